// End-to-end harness: a real `cairn serve` child process (embedded PGlite in a temporary
// directory, or a fresh PostgreSQL database when TEST_DATABASE_URL is set) and real
// `cairn agent` child processes, driven through the HTTP API like a user would.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createTestDb, usingPostgres, usingRedis, type TestDb } from '../helpers/db.js';
import { runCli, type CliProcess } from '../helpers/process.js';

const ADMIN_EMAIL = 'admin@agent-e2e.test';
const ADMIN_PASSWORD = 'correct-horse-battery-staple';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface JobView {
  id: string;
  state: string;
  attempt: number;
  agent_id: string | null;
  exit_status: number | null;
  failure_reason: string | null;
  priority: string;
  finished_at: string | null;
  [key: string]: unknown;
}

export interface E2eServer {
  url: string;
  dir: string;
  /** The PostgreSQL clone (only with TEST_DATABASE_URL), for assertions on the record. */
  testDb: TestDb | undefined;
  process: CliProcess;
  /** Agents started on this server: their output goes into failure messages. */
  agents: E2eAgent[];
  /** Starts the server again on the same port and database (after a kill). */
  restart(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  api<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }>;
  createPool(name?: string): Promise<{ name: string; token: string }>;
  enqueue(job: Record<string, unknown>): Promise<JobView>;
  job(id: string): Promise<JobView>;
  /** Polls the job until `done` holds; fails with the job's last state after `timeoutMs`. */
  waitForJob(id: string, done: (job: JobView) => boolean, timeoutMs?: number): Promise<JobView>;
  logText(id: string, attempt?: number): Promise<string>;
  /** GET with the admin's credentials, answered as is (downloads). */
  raw(route: string): Promise<Response>;
  /** The admin's access token (event streams, CLI commands). */
  accessToken(): string;
  close(): Promise<void>;
}

async function waitReady(url: string, server: CliProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`server exited early:\n${server.output()}`);
    try {
      if ((await fetch(`${url}/health/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not become ready:\n${server.output()}`);
}

export async function startServer(env: Record<string, string> = {}): Promise<E2eServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-agent-e2e-'));
  const testDb = usingPostgres ? await createTestDb() : undefined;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const serverEnv = {
    CAIRN_DATA_DIR: path.join(dir, 'server'),
    DATABASE_URL: testDb?.url ?? '',
    REDIS_URL: usingRedis ? process.env.TEST_REDIS_URL! : '',
    HOST: '127.0.0.1',
    PORT: String(port),
    CAIRN_LOG_LEVEL: 'error',
    CAIRN_ADMIN_EMAIL: ADMIN_EMAIL,
    CAIRN_ADMIN_PASSWORD: ADMIN_PASSWORD,
    CAIRN_JWT_SECRET: randomBytes(32).toString('hex'),
    // Every test process calls from 127.0.0.1, and with Redis the limits are shared.
    CAIRN_RATE_LIMIT_ANONYMOUS: '10000000',
    CAIRN_RATE_LIMIT_AUTHENTICATED: '10000000',
    CAIRN_MAX_EVENT_LOOP_DELAY_MS: '0',
    // Lost agents (6 s of silence) and lapsed leases are noticed within seconds, with room
    // for a busy test machine: an agent fences its jobs after 4.8 s without a heartbeat.
    CAIRN_AGENT_HEARTBEAT_SECONDS: '2',
    CAIRN_JOB_LEASE_SECONDS: '10',
    ...env,
  };
  let child = runCli(['serve'], serverEnv);
  await waitReady(url, child);
  let token = '';
  const login = async () => {
    const res = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
    token = ((await res.json()) as { access_token: string }).access_token;
  };
  await login();

  const server: E2eServer = {
    url,
    dir,
    testDb,
    agents: [],
    get process() {
      return child;
    },
    async restart() {
      child = runCli(['serve'], serverEnv);
      await waitReady(url, child);
    },
    async kill(signal = 'SIGKILL') {
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill(signal);
      await child.exited;
    },
    async api<T>(method: string, route: string, body?: unknown) {
      const res = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed as T };
    },
    async createPool(name = `pool-${randomBytes(3).toString('hex')}`) {
      const res = await server.api<{ name: string; registration_token: string }>('POST', '/api/v1/pools', { name });
      if (res.status !== 201) throw new Error(`pool: ${res.status} ${JSON.stringify(res.body)}`);
      return { name: res.body.name, token: res.body.registration_token };
    },
    async enqueue(job) {
      const res = await server.api<JobView>('POST', '/api/v1/jobs', job);
      if (res.status !== 201 && res.status !== 200) throw new Error(`enqueue: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async job(id) {
      const res = await server.api<JobView>('GET', `/api/v1/jobs/${id}`);
      if (res.status !== 200) throw new Error(`job ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async waitForJob(id, done, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const job = await server.job(id);
        if (done(job)) return job;
        if (Date.now() > deadline) {
          const said = server.agents.map((a) => `--- ${a.workDir}\n${a.process.output().split('\n').slice(-40).join('\n')}`);
          throw new Error(`job ${id} never got there; last seen: ${JSON.stringify(job)}\nagents said:\n${said.join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    raw: (route) => fetch(`${url}${route}`, { headers: { authorization: `Bearer ${token}` } }),
    accessToken: () => token,
    async logText(id, attempt) {
      const res = await server.raw(`/api/v1/jobs/${id}/log.txt${attempt ? `?attempt=${attempt}` : ''}`);
      if (res.status !== 200) throw new Error(`log of ${id}: ${res.status} ${await res.text()}`);
      return res.text();
    },
    async close() {
      await server.kill('SIGKILL');
      await testDb?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export interface E2eAgent {
  process: CliProcess;
  workDir: string;
  /** Resolves with the process's exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startAgent(
  server: E2eServer,
  pool: { name: string; token: string },
  opts: { name?: string; concurrency?: number; secrets?: Record<string, string>; args?: string[]; workDir?: string } = {},
): Promise<E2eAgent> {
  const name = opts.name ?? `agent-${randomBytes(3).toString('hex')}`;
  const workDir = opts.workDir ?? path.join(server.dir, name);
  const args = ['agent', '--url', server.url, '--pool', pool.name, '--name', name, '--work-dir', workDir];
  args.push('--concurrency', String(opts.concurrency ?? 1), '--kill-grace', '2');
  if (opts.secrets) {
    const file = path.join(server.dir, `${name}.env`);
    await writeFile(
      file,
      Object.entries(opts.secrets)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}\n`)
        .join(''),
    );
    args.push('--env-file', file);
  }
  const child = runCli([...args, ...(opts.args ?? [])], { CAIRN_AGENT_TOKEN: pool.token });
  await child.waitForOutput(/waiting for jobs/, 30_000);
  const agent: E2eAgent = {
    process: child,
    workDir,
    async stop(signal = 'SIGKILL') {
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill(signal);
      return child.exited;
    },
  };
  server.agents.push(agent);
  return agent;
}

/** True while a process with this pid exists (and is not merely a zombie awaiting its reaper). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // On Linux a killed orphan is a zombie until init reaps it: that counts as gone.
    return !/\)\s+Z\s/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
