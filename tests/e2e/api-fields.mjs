// What the page scripts read of each API answer, checked against the OpenAPI document the
// server publishes (GET /api/openapi.json). web/assets/api.js reports every field a page
// reads of an answer when the page has `__apiRead` (see watchApiReads); checkReads says
// which of those reads name a field the documented answer does not have, and which
// endpoints the pages call that the document does not describe.

/**
 * Endpoints the pages call that are not in the OpenAPI document yet: their answers cannot
 * be checked. Only these; a page calling any other undocumented endpoint fails the test.
 */
export const UNDOCUMENTED = new Map([
]);

/** Make the context's pages report their reads into `reads` (Map "METHOD /path STATUS" → Set of fields). */
export async function watchApiReads(ctx, reads) {
  await ctx.exposeFunction('__apiRead', (endpoint, field) => {
    if (!reads.has(endpoint)) reads.set(endpoint, new Set());
    reads.get(endpoint).add(field);
  });
}

const byLiteralFirst = (a, b) => (a.match(/\{/g) || []).length - (b.match(/\{/g) || []).length;

/** The document's path template a concrete path falls under, if any. */
export function templateOf(doc, path) {
  for (const tpl of Object.keys(doc.paths).sort(byLiteralFirst)) {
    const re = new RegExp(`^${tpl.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (re.test(path)) return tpl;
  }
  return null;
}

function deref(doc, schema) {
  while (schema?.$ref) schema = schema.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o?.[k], doc);
  return schema || {};
}

const types = (s) => [].concat(s.type || []);

/** Whether `schema` has the field path `tokens` (['.rooms', '[]', '.name']). */
function has(doc, schema, tokens) {
  const s = deref(doc, schema);
  if (!tokens.length) return true;
  for (const key of ['allOf', 'oneOf', 'anyOf']) {
    if (s[key]) return s[key].some((b) => has(doc, b, tokens));
  }
  const [tok, ...rest] = tokens;
  if (tok === '[]') return types(s).includes('array') && has(doc, s.items || {}, rest);
  const name = tok.slice(1);
  if (s.properties && Object.hasOwn(s.properties, name)) return has(doc, s.properties[name], rest);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') return has(doc, s.additionalProperties, rest);
  if (s.additionalProperties === true) return true;
  // A schema that says nothing of its shape (free-form JSON) cannot be checked.
  return !s.type && !s.properties && !s.items;
}

/**
 * The reads that do not fit the document: `{ wrong: [...], undocumented: [...], checked }`.
 * `wrong` lists "GET /api/rooms 200: .rooms[].nmae"; `undocumented` endpoints the pages
 * called that the document lacks and UNDOCUMENTED does not name.
 */
export function checkReads(doc, reads) {
  const wrong = [];
  const undocumented = new Set();
  let checked = 0;
  for (const [endpoint, fields] of reads) {
    const [method, path, status] = endpoint.split(' ');
    const tpl = templateOf(doc, path);
    const op = tpl && doc.paths[tpl][method.toLowerCase()];
    if (!op) {
      const name = `${method} ${tpl || path}`;
      if (![...UNDOCUMENTED.keys()].some((u) => new RegExp(`^${u.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`).test(`${method} ${path}`))) undocumented.add(name);
      continue;
    }
    const answer = op.responses?.[status];
    const schema = answer?.content?.['application/json']?.schema;
    for (const field of fields) {
      const tokens = field.match(/\[\]|\.[^.[]+/g) || [];
      if (!schema || !has(doc, schema, tokens)) wrong.push(`${method} ${tpl} ${status}: ${field}`);
      else checked += 1;
    }
  }
  return { wrong: wrong.sort(), undocumented: [...undocumented].sort(), checked };
}
