// WebSocket benchmark. Run: npx tsx bench/ws.ts   (results: bench/README.md, "## WebSocket")
// One `cairn serve` process (PostgreSQL + Redis, as a replica runs in production); the load
// generator (bench/ws-load.ts) in another process, connecting from several 127.0.0.x source
// addresses; events published into the server's Redis channel by this process, as another
// replica would, each carrying its send time so delivery latency is measured end to end.
// Env: WS_BENCH_CONNECTIONS (50000), WS_BENCH_BROADCAST_SUBSCRIBERS (10000; default at most 1/5
// of the connections), WS_BENCH_BROADCASTS (20), WS_BENCH_SUSTAINED_SUBSCRIBERS (5000; 1/10),
// WS_BENCH_SUSTAINED_TOPICS (1000), WS_BENCH_RATE (5000 events/s), WS_BENCH_SECONDS (30),
// WS_BENCH_IDLE_SECONDS (30), WS_BENCH_SOURCE_ADDRESSES (8), BENCH_DATABASE_URL, BENCH_REDIS_URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { createRedisBus } from '../src/platform/bus.redis.js';
import { publishOrgEvent } from '../src/platform/bus.js';
import { createRedis } from '../src/platform/redis.js';
import { cpuSeconds, createBenchDatabase, machine, rssKiB, startProcess, stop, waitFor } from './lib.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const N = env('WS_BENCH_CONNECTIONS', 50_000);
// Smaller runs scale the default audiences down with the connection count; explicit values win.
const SUSTAINED = Math.min(env('WS_BENCH_SUSTAINED_SUBSCRIBERS', Math.min(5_000, Math.floor(N / 10))), N);
const BROADCAST = Math.min(env('WS_BENCH_BROADCAST_SUBSCRIBERS', Math.min(10_000, Math.floor(N / 5))), N - SUSTAINED);
const ROUNDS = env('WS_BENCH_BROADCASTS', 20);
const TOPICS = Math.min(env('WS_BENCH_SUSTAINED_TOPICS', 1_000), SUSTAINED);
const RATE = env('WS_BENCH_RATE', 5_000);
const SECONDS = env('WS_BENCH_SECONDS', 30);
const IDLE_SECONDS = env('WS_BENCH_IDLE_SECONDS', 30);
const ADDRESSES = Array.from({ length: env('WS_BENCH_SOURCE_ADDRESSES', 8) }, (_, i) => `127.0.0.${i + 2}`);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PORT = 3105;
const BASE = `http://127.0.0.1:${PORT}`;
const FILES = 1_048_576; // open files wanted for the server and the load generator
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Raises the open-file limit as far as allowed (the hard limit, unless privileged), then runs `command`. */
function withFileLimit(command: string): [string, string[]] {
  return ['bash', ['-c', `ulimit -n ${FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${command}`]];
}

function hardFileLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
}
if (hardFileLimit() < N + 1_000) {
  console.error(
    `warning: the hard open-file limit is ${hardFileLimit()}, below ${N} connections + headroom; raise it first ` +
      '(e.g. `prlimit --pid $$ --nofile=1048576:1048576` as a privileged user, or the container/systemd limit)',
  );
}

/** Request/response over the load generator's IPC channel. */
function driver(child: ChildProcess) {
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  child.on('message', (m: { id: number; result: unknown }) => waiting.get(m.id)?.(m.result));
  return <T>(command: Record<string, unknown>) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      waiting.set(id, (r) => resolve(r as T));
      child.send({ id, ...command });
    });
}
interface Report {
  received: number;
  samples: number;
  dropped: number;
  open: number;
  p50: number;
  p99: number;
  max: number;
}

async function api<T>(path: string, init: RequestInit & { token?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(`${BASE}${path}`, { ...init, headers });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const db = await createBenchDatabase('cairn_bench_ws');
const [command, args] = withFileLimit('node --import tsx src/cli/index.ts serve');
const server = startProcess(command, args, {
  DATABASE_URL: db.url,
  REDIS_URL,
  PORT: String(PORT),
  CAIRN_LOG_LEVEL: 'warn',
  CAIRN_ADMIN_EMAIL: 'bench@example.test',
  CAIRN_ADMIN_PASSWORD: 'bench-password-123',
  CAIRN_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
  CAIRN_ACCESS_TOKEN_TTL: '86400',
  CAIRN_RATE_LIMIT_AUTHENTICATED: '100000000',
  CAIRN_MAX_EVENT_LOOP_DELAY_MS: '0',
  CAIRN_EVENTS_CONNECTIONS_PER_USER: '10000000',
  CAIRN_EVENTS_CONNECTIONS_PER_IP: '10000000',
});
let generator: ChildProcess | undefined;
const pubConn = createRedis(REDIS_URL, 'bench-pub');
const subConn = createRedis(REDIS_URL, 'bench-sub');
try {
  await waitFor(`${BASE}/health/ready`, 60_000);
  await Promise.all([pubConn.connect(), subConn.connect()]);
  const bus = createRedisBus(pubConn, subConn); // the server's channel: as if another replica published
  const { access_token: token } = await api<{ access_token: string }>('/api/v1/auth/login', {
    method: 'POST',
    body: JSON.stringify({ email: 'bench@example.test', password: 'bench-password-123' }),
  });
  const orgId = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { org: string }).org;
  const projects: string[] = [];
  for (let i = 0; i < TOPICS + 2; i += 16) {
    const batch = Array.from({ length: Math.min(16, TOPICS + 2 - i) }, (_, j) =>
      api<{ id: string }>('/api/v1/projects', { method: 'POST', token, body: JSON.stringify({ name: `Bench ${i + j}` }) }),
    );
    projects.push(...(await Promise.all(batch)).map((p) => p.id));
  }
  const [broadcastProject, idleProject, ...sustainedProjects] = projects as [string, string, ...string[]];
  const plan = [
    { topic: `project:${broadcastProject}`, count: BROADCAST },
    ...sustainedProjects.map((id, i) => ({
      topic: `project:${id}`,
      count: Math.floor(SUSTAINED / TOPICS) + (i < SUSTAINED % TOPICS ? 1 : 0),
    })),
    { topic: `project:${idleProject}`, count: N - BROADCAST - SUSTAINED },
  ];

  await sleep(5_000);
  const rssBefore = rssKiB(server.pid!);
  const [genCommand, genArgs] = withFileLimit('node --import tsx bench/ws-load.ts');
  generator = spawn(genCommand, genArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const call = driver(generator);
  const opened = await call<{ opened: number; failed: number; firstError: string; seconds: number }>({
    cmd: 'open',
    url: `${BASE.replace('http', 'ws')}/api/v1/ws`,
    token,
    plan,
    sourceAddresses: ADDRESSES,
    concurrency: 256,
  });
  console.error(
    `opened ${opened.opened} (failed ${opened.failed}${opened.firstError ? `: ${opened.firstError}` : ''}) in ${opened.seconds.toFixed(1)} s`,
  );

  await sleep(10_000); // let allocations settle before reading RSS
  const rssIdle = rssKiB(server.pid!);
  const cpuIdleStart = cpuSeconds(server.pid!);
  await sleep(IDLE_SECONDS * 1000); // spans a heartbeat round (30 s by default)
  const idleCpu = (cpuSeconds(server.pid!) - cpuIdleStart) / IDLE_SECONDS;

  // Broadcast: one event to every subscriber of one topic, one round at a time.
  await call({ cmd: 'reset' });
  const padding = 'x'.repeat(200); // about the size of a real project event
  for (let round = 1; round <= ROUNDS; round++) {
    publishOrgEvent(bus, orgId, 'project.updated', { project_id: broadcastProject, sent: now(), padding });
    for (const deadline = now() + 10_000; now() < deadline; await sleep(20)) {
      if ((await call<Report>({ cmd: 'report' })).received >= round * BROADCAST) break;
    }
  }
  const broadcast = await call<Report>({ cmd: 'report' });

  // Sustained: RATE events/s over the sustained topics for SECONDS.
  await call({ cmd: 'reset' });
  const droppedBefore = broadcast.dropped;
  const cpuStart = cpuSeconds(server.pid!);
  const generatorCpuStart = cpuSeconds(generator.pid!);
  const started = now();
  let published = 0;
  while (now() - started < SECONDS * 1000) {
    const due = Math.floor(((now() - started) / 1000) * RATE);
    for (; published < due; published++) {
      const project = sustainedProjects[published % sustainedProjects.length]!;
      publishOrgEvent(bus, orgId, 'project.updated', { project_id: project, sent: now(), padding });
    }
    await sleep(5);
  }
  const sustainedCpu = (cpuSeconds(server.pid!) - cpuStart) / SECONDS;
  const generatorCpu = (cpuSeconds(generator.pid!) - generatorCpuStart) / SECONDS;
  const expected = published * (SUSTAINED / TOPICS);
  for (const deadline = now() + 15_000; now() < deadline; await sleep(100)) {
    if ((await call<Report>({ cmd: 'report' })).received >= expected) break;
  }
  const sustained = await call<Report>({ cmd: 'report' });
  const rssEnd = rssKiB(server.pid!);

  const perConnection = ((rssIdle - rssBefore) * 1024) / opened.opened;
  console.log(`\nmachine: ${machine()}; server, load generator, PostgreSQL and Redis share it`);
  console.log(
    `${N} connections (${BROADCAST} on the broadcast topic, ${SUSTAINED} over ${TOPICS} sustained topics, the rest idle)\n`,
  );
  console.log('| measure | result | target |');
  console.log('|---|---|---|');
  console.log(
    `| connections open / failed | ${opened.opened} / ${opened.failed} (opened in ${opened.seconds.toFixed(1)} s) | ${N} |`,
  );
  console.log(
    `| server RSS: before → ${opened.opened} idle connections | ${Math.round(rssBefore / 1024)} → ${Math.round(rssIdle / 1024)} MiB | |`,
  );
  console.log(`| RSS per idle connection | **${(perConnection / 1024).toFixed(2)} KiB** | ≤ 10 KiB |`);
  console.log(`| server CPU at idle (heartbeats included) | ${(idleCpu * 100).toFixed(1)} % of one core | |`);
  console.log(
    `| broadcast to ${BROADCAST} subscribers, ${ROUNDS} rounds: p50 / p99 / max | **${broadcast.p50} / ${broadcast.p99} / ${broadcast.max} ms** (${broadcast.received} of ${ROUNDS * BROADCAST} delivered) | p99 ≤ 250 ms |`,
  );
  console.log(
    `| sustained ${RATE} events/s for ${SECONDS} s (${published} events, ${Math.round(expected)} deliveries): p50 / p99 / max | **${sustained.p50} / ${sustained.p99} / ${sustained.max} ms** (${sustained.received} delivered) | |`,
  );
  console.log(`| connections dropped during the sustained load | **${sustained.dropped - droppedBefore}** | none |`);
  console.log(
    `| CPU during the sustained load: server / load generator; server RSS after | ${(sustainedCpu * 100).toFixed(0)} % / ${(generatorCpu * 100).toFixed(0)} % of one core; ${Math.round(rssEnd / 1024)} MiB | |`,
  );
  console.log(
    `| load average (1 min) at the end, all processes of the machine | ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores | |`,
  );
} finally {
  if (generator?.connected) generator.send({ id: -1, cmd: 'close' });
  pubConn.disconnect();
  subConn.disconnect();
  await stop(server);
  await db.drop();
}
