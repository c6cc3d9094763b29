// Sequencer cost for SQL-recorded leaves (the queue's job transitions, queued without a
// hash): N audit rows and their unhashed queue rows, then `sequenceAll` timed, with the
// WAL it wrote and the CPU it took per leaf.
// Run: npx tsx bench/ledger-sql-leaves.ts   (LEDGER_SQL_LEAVES=100000)
// For a baseline, run the same file in a worktree of another commit, one after the other.
import { sequenceAll } from '../src/features/ledger/ledger.sequencer.js';
import { migrate } from '../src/platform/db/migrate.js';
import { createPostgresDb } from '../src/platform/db/postgres.js';
import { createBenchDatabase, machine, postgresCpuSeconds } from './lib.js';

const N = Number(process.env.LEDGER_SQL_LEAVES ?? 100_000);
const bench = await createBenchDatabase('cairn_bench_sql_leaves');
const db = createPostgresDb(bench.url, 4);
try {
  await migrate(db);
  const org = crypto.randomUUID();
  for (let i = 0; i < N; i += 10_000) {
    // The shape auditCtes writes for a job claim: the audit row, and its leaf without a hash.
    await db.query(
      `WITH a AS (
         INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action, resource_type,
                                   resource_id, payload)
         SELECT gen_random_uuid(), $1, date_trunc('milliseconds', now()), 'agent', 'a1', 'agent-1', 'job.claimed', 'job',
                gen_random_uuid()::text, jsonb_build_object('attempt', 1, 'agent_id', 'a1')
           FROM generate_series(1, least(10000, $2::int - $3::int))
         RETURNING id, org_id)
       INSERT INTO ledger_queue (org_id, kind, ref_id) SELECT org_id, 'audit', id FROM a`,
      [org, N, i],
    );
  }
  const walBytes = async () =>
    Number((await db.query<{ b: string }>('SELECT wal_bytes::bigint AS b FROM pg_stat_wal')).rows[0]!.b);
  const wal0 = await walBytes();
  const started = performance.now();
  const cpu0 = { self: process.cpuUsage(), postgres: postgresCpuSeconds() };
  const { appended } = await sequenceAll(db);
  const ms = performance.now() - started;
  const self = process.cpuUsage(cpu0.self);
  // CPU per leaf: this process (hashing, encoding, the driver) and every PostgreSQL process.
  const perLeaf = (seconds: number) => Math.round((seconds / appended) * 1e7) / 10;
  const walMb = (await walBytes()) - wal0;
  console.log(`machine: ${machine()}`);
  console.log(
    JSON.stringify({
      appended,
      ms: Math.round(ms),
      leaves_per_second: Math.round((appended / ms) * 1000),
      wal_mb: Math.round(walMb / 1e5) / 10,
      cpu_us_per_leaf: {
        sequencer: perLeaf((self.user + self.system) / 1e6),
        postgres: perLeaf(postgresCpuSeconds() - cpu0.postgres),
      },
    }),
  );
} finally {
  await db.close();
  await bench.drop();
}
