// What run tests start from: an app, an organization and its owner (with the owner's
// AuthContext, for calling services directly), a `linux` pool with one agent, a project.
import type { AuthContext } from '../../src/platform/auth.js';
import { buildTestApp, type TestApp } from './app.js';
import { createOrgAndLogin, type TestUser } from './auth.js';
import { createPool, registerAgent, type TestAgent } from './queue.js';

export interface RunsFixture {
  t: TestApp;
  owner: TestUser;
  auth: AuthContext;
  agent: TestAgent;
  projectId: string;
}

export async function runsFixture(projectName: string): Promise<RunsFixture> {
  const t = await buildTestApp();
  const owner = await createOrgAndLogin(t);
  const agent = await registerAgent(t, await createPool(t, owner, 'linux'), { max_concurrency: 8 });
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: owner.headers,
    payload: { name: projectName },
  });
  const auth = await t.deps.authenticator.authenticate(owner.headers.authorization, { requestId: 'test', clientIp: null });
  return { t, owner, agent, projectId: res.json<{ id: string }>().id, auth: auth };
}
