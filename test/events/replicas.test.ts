// Two `cairn serve` processes sharing PostgreSQL and a private Redis: an event caused on one
// reaches a socket on the other; with Redis killed, events still reach local sockets; with
// Redis back, the socket is told to resync (it may have missed the other replica's events)
// and cross-replica delivery resumes.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, usingPostgres, usingRedis, type TestDb } from '../helpers/db.js';
import { runCli, type CliProcess } from '../helpers/process.js';
import { TestSocket, wsUrl } from './helpers.js';
import { haveRedisServer, startPrivateRedis, type PrivateRedis } from './redis-server.js';

const EMAIL = 'replicas@example.test';
const PASSWORD = 'replicas-password-123';

describe.skipIf(!usingPostgres || !usingRedis || !haveRedisServer)('two replicas', () => {
  let db: TestDb;
  let redis: PrivateRedis;
  const servers: CliProcess[] = [];
  const urls: string[] = [];

  async function startReplica(): Promise<string> {
    const server = runCli(['serve'], {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      PORT: '0',
      CAIRN_LOG_LEVEL: 'error',
      CAIRN_JWT_SECRET: secret,
      CAIRN_ADMIN_EMAIL: EMAIL,
      CAIRN_ADMIN_PASSWORD: PASSWORD,
    });
    servers.push(server);
    const [, url] = await server.waitForOutput(/Cairn is ready at (http:\/\/\S+)/);
    return url!;
  }
  const secret = randomBytes(32).toString('hex');

  beforeAll(async () => {
    db = await createTestDb();
    redis = await startPrivateRedis();
    urls.push(await startReplica()); // the first creates the admin
    urls.push(await startReplica());
  }, 120_000);
  afterAll(async () => {
    for (const server of servers) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await redis.stop();
    await db.drop();
  });

  const readiness = async (url: string) => ((await (await fetch(`${url}/health/ready`)).json()) as { status: string }).status;

  it('carries events across replicas, degrades to local delivery without Redis, and recovers', { timeout: 120_000 }, async () => {
    const [onA, onB] = urls as [string, string];
    const login = await fetch(`${onA}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    });
    const { access_token: token } = (await login.json()) as { access_token: string };
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const project = (await (
      await fetch(`${onA}/api/v1/projects`, { method: 'POST', headers, body: JSON.stringify({ name: 'Replicated' }) })
    ).json()) as { id: string };
    const describe = async (url: string, description: string) => {
      const res = await fetch(`${url}/api/v1/projects/${project.id}`, {
        method: 'PATCH',
        headers,
        body: JSON.stringify({ description }),
      });
      expect(res.status).toBe(200);
    };
    const topic = `project:${project.id}`;
    const described = (text: string) => (m: { type: string; data: Record<string, unknown> }) =>
      m.type === 'project.updated' && (m.data.project as { description: string }).description === text;

    const socket = await TestSocket.open(wsUrl(onB, `?topics=${topic}`), { headers: { authorization: headers.authorization } });
    await socket.next((m) => m.type === 'subscribed');

    await describe(onA, 'from A');
    expect((await socket.next(described('from A'))).id).toMatch(/^\d+-\d+$/);

    await redis.kill();
    await expect.poll(() => readiness(onB), { timeout: 15_000 }).toBe('degraded');
    await describe(onB, 'from B, Redis down');
    expect((await socket.next(described('from B, Redis down'))).id).toMatch(/^L/);
    await describe(onA, 'from A, Redis down'); // cannot reach B: B's socket must learn it missed something

    await redis.restart();
    for (const url of urls) await expect.poll(() => readiness(url), { timeout: 20_000 }).toBe('ready');
    expect((await socket.next((m) => m.type === 'resync')).topic).toBe(topic);
    await describe(onA, 'from A, Redis back');
    await socket.next(described('from A, Redis back'));
    expect(socket.events().some(described('from A, Redis down'))).toBe(false);
    socket.close();
  });
});
