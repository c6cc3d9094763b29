// Sends malformed requests to every route in the OpenAPI document and asserts a 4xx
// problem+json — never a 5xx. New routes are covered automatically.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../helpers/auth.js';

let t: TestApp;
let owner: TestUser;

interface Operation {
  parameters?: { in: string; name: string; schema?: { type?: string; format?: string } }[];
  requestBody?: unknown;
}

beforeAll(async () => {
  t = await buildTestApp({ CAIRN_BODY_LIMIT: '65536' });
  owner = await createOrgAndLogin(t);
});
afterAll(() => t.close());

function operations() {
  const doc = t.app.swagger() as unknown as { paths: Record<string, Record<string, Operation>> };
  const ops: { method: string; path: string; op: Operation }[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) ops.push({ method: method.toUpperCase(), path, op });
  }
  return ops;
}

const uuid = '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10';
const fill = (path: string, value: string) => path.replace(/\{\w+\}/g, value);

function expectClientError(res: { statusCode: number; headers: Record<string, unknown>; body: string }, what: string) {
  expect(res.statusCode, `${what} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, `${what} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
  expect(String(res.headers['content-type']), what).toMatch(/application\/problem\+json/);
  const body = JSON.parse(res.body) as { code?: string; instance?: string; status?: number };
  expect(body.status, what).toBe(res.statusCode);
  expect(typeof body.code, what).toBe('string');
  expect(typeof body.instance, what).toBe('string');
}

describe('malformed requests never produce a 5xx', () => {
  it('covers a meaningful number of routes', () => {
    expect(operations().length).toBeGreaterThanOrEqual(20);
  });

  it('bodies: malformed JSON, wrong types, arrays, unknown fields, NUL, oversize, wrong content type', async () => {
    const bodies: [string, string, string][] = [
      ['malformed JSON', '{"name": ', 'application/json'],
      ['a JSON array', '[1,2,3]', 'application/json'],
      ['a JSON number', '42', 'application/json'],
      [
        'wrong field types',
        JSON.stringify({ name: 42, email: [], password: {}, scopes: 'x', role: 7, slug: false, refresh_token: 1 }),
        'application/json',
      ],
      ['an unknown field', JSON.stringify({ definitely_not_a_field: true }), 'application/json'],
      ['a NUL character', '{"name": "a\\u0000b", "email": "a\\u0000@b", "password": "x\\u0000"}', 'application/json'],
      ['an oversize body', JSON.stringify({ name: 'x'.repeat(70_000) }), 'application/json'],
      ['a non-JSON content type', 'name=x', 'application/x-www-form-urlencoded'],
    ];
    let sent = 0;
    for (const { method, path, op } of operations()) {
      if (!op.requestBody) continue;
      for (const [what, payload, contentType] of bodies) {
        for (const headers of [owner.headers, {}]) {
          const res = await t.app.inject({
            method: method as 'POST',
            url: fill(path, uuid),
            payload,
            headers: { ...headers, 'content-type': contentType },
          });
          expectClientError(res, `${method} ${path} with ${what}${headers === owner.headers ? '' : ' (anonymous)'}`);
          sent++;
        }
      }
    }
    expect(sent).toBeGreaterThan(50);
  });

  it('path parameters: bad UUIDs, huge values, NUL', async () => {
    for (const { method, path } of operations()) {
      if (!path.includes('{')) continue;
      for (const bad of ['not-a-uuid', '1', 'x'.repeat(300), '%00', "'%20OR%201=1--"]) {
        const res = await t.app.inject({
          method: method as 'GET',
          url: fill(path, bad),
          headers: owner.headers,
          payload: method === 'GET' || method === 'DELETE' ? undefined : {},
        });
        expectClientError(res, `${method} ${fill(path, bad)}`);
      }
    }
  });

  it('query strings: huge or non-numeric limits, bad cursors, unknown parameters', async () => {
    for (const { method, path, op } of operations()) {
      if (method !== 'GET' || !op.parameters?.some((p) => p.in === 'query')) continue;
      const names = new Set(op.parameters.filter((p) => p.in === 'query').map((p) => p.name));
      const cases = ['limit=1000000', 'limit=abc', 'limit=-1', 'cursor=%%%', 'cursor=bm90LWpzb24', 'surprise=1'];
      if (names.has('since')) cases.push('since=yesterday');
      if (names.has('project_id')) cases.push('project_id=nope');
      if (names.has('sort')) cases.push('sort=password');
      for (const query of cases) {
        const key = query.split('=')[0]!;
        if (key !== 'surprise' && !names.has(key)) continue;
        const res = await t.app.inject({ method: 'GET', url: `${fill(path, uuid)}?${query}`, headers: owner.headers });
        // A route with its own id may answer 404 for the made-up id before looking at the query.
        if (res.statusCode === 404) continue;
        expectClientError(res, `GET ${path}?${query}`);
      }
    }
  });

  it('unknown routes and methods', async () => {
    expectClientError(await t.app.inject({ method: 'GET', url: '/api/v1/nope' }), 'unknown route');
    expectClientError(await t.app.inject({ method: 'PUT', url: '/api/v1/projects' }), 'unknown method');
  });
});
