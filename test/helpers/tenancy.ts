// The reusable tenancy check: every route under a resource's path, called by a user of
// another organization with the resource's id, must answer 404 problem+json — never 403,
// never the resource. Routes are read from the OpenAPI document, so a route added later
// is covered without touching the test. Agent-only routes (tagged `agent protocol`) answer
// 403 to any user, so when the check is given an agent of the other organization, they are
// called with its token instead.
import { expect } from 'vitest';
import type { TestApp } from './app.js';
import type { TestUser } from './auth.js';

interface OpenApiDoc {
  paths: Record<string, Record<string, { requestBody?: unknown; tags?: string[] }>>;
}

export interface TenancyCheck {
  /** e.g. `/api/v1/projects/{id}`: every route starting with it is tried. */
  pathPrefix: string;
  /** Path parameters of the victim's resource, e.g. `{ id: project.id }`. */
  params: Record<string, string>;
  /** The user of the other organization. */
  as: TestUser;
  /** A body that would be valid for the route, by `METHOD path`, so validation is not what answers. */
  bodies?: Record<string, unknown>;
  /** An agent of the other organization: calls the routes tagged `agent protocol`. */
  agent?: { headers: Record<string, string> };
  /** More of a valid request, by `METHOD path`: a query string, headers, a raw (non-JSON) payload. */
  requests?: Record<string, { query?: string; headers?: Record<string, string>; payload?: string | Buffer }>;
}

export function routesUnder(t: TestApp, pathPrefix: string): { method: string; path: string; tags: string[] }[] {
  const doc = t.app.swagger() as unknown as OpenApiDoc;
  const routes: { method: string; path: string; tags: string[] }[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (!path.startsWith(pathPrefix)) continue;
    for (const [method, op] of Object.entries(ops)) {
      if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) {
        routes.push({ method: method.toUpperCase(), path, tags: op.tags ?? [] });
      }
    }
  }
  return routes;
}

export async function expectHiddenFromOtherOrgs(t: TestApp, check: TenancyCheck): Promise<number> {
  const routes = routesUnder(t, check.pathPrefix);
  expect(routes.length, `no routes under ${check.pathPrefix}`).toBeGreaterThan(0);
  for (const { method, path, tags } of routes) {
    const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = check.params[name];
      if (!value) throw new Error(`no value for path parameter ${name} of ${path}`);
      return value;
    });
    const key = `${method} ${path}`;
    const extra = check.requests?.[key];
    const body = extra?.payload ?? check.bodies?.[key];
    const caller = check.agent && tags.includes('agent protocol') ? check.agent : check.as;
    const res = await t.app.inject({
      method: method as 'GET',
      url: extra?.query ? `${url}?${extra.query}` : url,
      headers: { ...caller.headers, ...extra?.headers },
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    expect(res.statusCode, `${method} ${url} as another organization: ${res.body}`).toBe(404);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
  }
  return routes.length;
}

/** A list endpoint, read by the other organization, must not contain the id anywhere. */
export async function expectNotListed(t: TestApp, url: string, as: TestUser, id: string): Promise<void> {
  const res = await t.app.inject({ method: 'GET', url, headers: as.headers });
  expect(res.statusCode).toBe(200);
  expect(res.body).not.toContain(id);
}
