// Shared plumbing for benchmarks: throwaway PostgreSQL databases, child servers, readiness
// waits and RSS readings. Benchmarks only ever target 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const PG_BASE = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function createBenchDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: PG_BASE });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_BASE);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_BASE });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export function startProcess(command: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Both pipes must be drained: a server whose log pipe fills up blocks on its next write.
  child.stdout?.on('data', (d: Buffer) => process.stderr.write(`[server] ${d.toString()}`));
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[server] ${d.toString()}`));
  return child;
}

export async function waitFor(url: string, timeoutMs = 30_000, status = 200): Promise<number> {
  const start = performance.now();
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === status) return performance.now() - start;
    } catch {
      // not listening yet
    }
    if (performance.now() - start > timeoutMs) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

/** The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], utime [11]). */
function statFields(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ, 100 on Linux)
}

/**
 * CPU seconds PostgreSQL has used on this machine: every live `postgres` process, plus the
 * processes the postmaster has reaped (its children's time), so a backend that exits
 * between two readings still counts. Only meaningful as the difference of two readings.
 */
export function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('postgres')) continue;
      const fields = statFields(Number(entry));
      ticks += Number(fields[11]) + Number(fields[12]);
      const parentIsPostgres = readFileSync(`/proc/${fields[1]}/comm`, 'utf8').startsWith('postgres');
      if (!parentIsPostgres) ticks += Number(fields[13]) + Number(fields[14]); // the postmaster
    } catch {
      // exited while we read: its time is in the postmaster's children's time
    }
  }
  return ticks / 100;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export function machine(): string {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export const BENCH_ADMIN = { email: 'bench@example.test', password: 'bench-password-123' };

/** The settings every benchmark server runs with: no limits or shedding in the way. */
export const BENCH_SERVER_ENV = {
  CAIRN_LOG_LEVEL: 'warn',
  CAIRN_ADMIN_EMAIL: BENCH_ADMIN.email,
  CAIRN_ADMIN_PASSWORD: BENCH_ADMIN.password,
  CAIRN_RATE_LIMIT_AUTHENTICATED: '100000000',
  CAIRN_RATE_LIMIT_ANONYMOUS: '10000000',
  CAIRN_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
  CAIRN_MAX_EVENT_LOOP_DELAY_MS: '0',
};

export interface BenchServer {
  url: string;
  dbUrl: string;
  pid: number;
  /** The bench admin's access token. */
  token: string;
  close(): Promise<void>;
}

/** The built `cairn serve` on a throwaway PostgreSQL database, logged in as the bench admin. */
export async function startCairnOnPostgres(dbName: string, port: number, env: Record<string, string> = {}): Promise<BenchServer> {
  const db = await createBenchDatabase(dbName);
  const server = startProcess('node', [path.resolve('dist/src/cli/index.js'), 'serve'], {
    DATABASE_URL: db.url,
    PORT: String(port),
    ...BENCH_SERVER_ENV,
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/health/ready`);
    const login = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(BENCH_ADMIN),
    });
    const { access_token } = (await login.json()) as { access_token: string };
    return {
      url,
      dbUrl: db.url,
      pid: server.pid!,
      token: access_token,
      async close() {
        await stop(server);
        await db.drop();
      },
    };
  } catch (error) {
    await stop(server);
    await db.drop();
    throw error;
  }
}

/**
 * Waits until the server's ledger sequencer has appended every queued leaf, so a scenario
 * starts on a quiet server rather than beside the previous one's backlog. Resolves with
 * the milliseconds it waited.
 */
export async function ledgerDrained(dbUrl: string, timeoutMs = 180_000): Promise<number> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  const start = performance.now();
  try {
    for (;;) {
      const { rows } = await client.query<{ queued: boolean }>('SELECT EXISTS (SELECT 1 FROM ledger_queue) AS queued');
      if (!rows[0]!.queued) return Math.round(performance.now() - start);
      if (performance.now() - start > timeoutMs) throw new Error(`ledger backlog not drained after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await client.end();
  }
}

/** VACUUM (ANALYZE) of a whole bench database: a clean start for the next measured window. */
export async function vacuum(dbUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    await client.query('VACUUM (ANALYZE)');
  } finally {
    await client.end();
  }
}

/**
 * Runs a script in its own process (a load generator); resolves with its last line as JSON.
 * A line `mark <name>` it prints calls `onMark(name)` as it arrives: the queue's load
 * generator marks where its measured window starts, for readings of other processes' CPU.
 */
export function runJsonChild(
  script: string,
  args: string[],
  env: Record<string, string>,
  onMark?: (name: string) => void,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      const before = out.length;
      out += d.toString();
      // Whole lines only: a mark split across two chunks is seen once its newline arrives.
      const lineStart = out.lastIndexOf('\n', before - 1) + 1;
      for (const line of out.slice(lineStart).split('\n').slice(0, -1)) {
        if (line.startsWith('mark ')) onMark?.(line.slice(5));
      }
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} ${args.join(' ')} exited ${code}: ${out}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as Record<string, unknown>);
    });
  });
}

/** p50 / p99 / max of a list of milliseconds. */
export function percentiles(values: readonly number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN) * 100) / 100;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}
