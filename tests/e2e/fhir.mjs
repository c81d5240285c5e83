// A small scripted FHIR R4 server for the browser tests: a real HTTP server on a loopback
// port that examroom's FHIR client talks to as it would to an EHR. It has a SMART Backend
// Services token endpoint (accepts any well-formed client assertion from the expected
// client id), `metadata`, a Patient read and searches by `patient` (both `<id>` and
// `Patient/<id>` forms). A test changes `behaviour` between requests to make one search
// misbehave (a 200 OperationOutcome instead of a searchset) and then recover.
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/**
 * @param {object} opts { patient: {id, …resource}, resources: {Type: [resource…]}, clientId }
 * Resolves { base, tokenUrl, clientId, behaviour, requests, close() } where
 * `behaviour[Type]` is 'ok' (default), 'operation_outcome', 'server_error' or 'empty_object',
 * `behaviour.token` 'ok' or 'down', and `requests` lists "GET Type" lines as they arrive.
 */
export async function scriptedFhir({ patient, resources = {}, clientId = 'examroom-test' }) {
  const tokens = new Set();
  const behaviour = { token: 'ok' };
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    const body = await new Promise((resolve) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => resolve(b)); });
    const send = (status, obj, type = FHIR_JSON) => {
      res.writeHead(status, { 'content-type': type });
      res.end(typeof obj === 'string' ? obj : JSON.stringify(obj));
    };
    if (req.method === 'POST' && url.pathname === '/auth/token') {
      requests.push('POST token');
      if (behaviour.token !== 'ok') return send(503, { error: 'temporarily_unavailable' }, 'application/json');
      const form = new URLSearchParams(body);
      const assertion = form.get('client_assertion') || '';
      let claims = null;
      try { claims = JSON.parse(Buffer.from(assertion.split('.')[1], 'base64url').toString()); } catch { /* below */ }
      const good = form.get('grant_type') === 'client_credentials'
        && form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
        && assertion.split('.').length === 3 && claims?.iss === clientId && claims?.sub === clientId;
      if (!good) return send(400, { error: 'invalid_client' }, 'application/json');
      const token = randomUUID();
      tokens.add(token);
      return send(200, { access_token: token, token_type: 'bearer', expires_in: 300, scope: form.get('scope') || '' }, 'application/json');
    }
    const path = url.pathname.replace(/^\/fhir\/?/, '');
    if (path === 'metadata') return send(200, { resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1', format: ['json'] });
    const auth = /^Bearer (.+)$/i.exec(req.headers.authorization || '');
    if (!auth || !tokens.has(auth[1])) return send(401, outcome('login', 'no valid bearer token'));
    const [type, id] = path.split('/');
    requests.push(`GET ${type}${id ? '/' : ''}`);
    const mode = behaviour[type] || 'ok';
    if (mode === 'server_error') return send(500, outcome('exception', 'scripted failure'));
    if (mode === 'operation_outcome') return send(200, outcome('too-costly', 'scripted: this search is refused'));
    if (mode === 'empty_object') return send(200, {});
    if (type === 'Patient' && id) {
      return id === patient.id ? send(200, { resourceType: 'Patient', ...patient }) : send(404, outcome('not-found', 'no such patient'));
    }
    const ref = (url.searchParams.get('patient') || url.searchParams.get('subject') || '').replace(/^Patient\//, '');
    if (ref !== patient.id) return send(200, bundle(url, []));
    let list = resources[type] || [];
    // Token parameters as a server matches them: `code` / `system|code`, comma = or.
    const matches = (param, concepts) => {
      const wanted = param.split(',').map((t) => t.split('|').pop());
      return concepts.some((c) => (c?.coding || []).some((x) => wanted.includes(x.code)));
    };
    const category = url.searchParams.get('category');
    if (category) list = list.filter((r) => matches(category, r.category || []));
    const code = url.searchParams.get('code');
    if (code) list = list.filter((r) => matches(code, [r.code]));
    return send(200, bundle(url, list));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    base: `${origin}/fhir`,
    tokenUrl: `${origin}/auth/token`,
    clientId,
    behaviour,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

function outcome(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] };
}

function bundle(url, list) {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: list.length,
    link: [{ relation: 'self', url: url.href }],
    entry: list.map((r) => ({ fullUrl: `${url.origin}/fhir/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } })),
  };
}
