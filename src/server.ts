// Opens the database and Redis, applies migrations, starts the background loops and
// listens; closes everything in order on SIGTERM/SIGINT.
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { buildApp, type App } from './app.js';
import type { Config } from './config.js';
import { createAuthenticator } from './features/auth/authenticate.js';
import { readOrCreateSetting } from './features/auth/auth.queries.js';
import { bootstrapFirstAdmin } from './features/orgs/bootstrap.js';
import { blockStepDriver } from './features/approvals/approvals.block.js';
import { startApprovalExpiry } from './features/approvals/approvals.loop.js';
import { deployStepDriver } from './features/deployments/deployments.driver.js';
import { registerDeploymentMetrics } from './features/deployments/deployments.metrics.js';
import { listenForDeployJobs, startDeploymentSweeper } from './features/deployments/deployments.runtime.js';
import { startLedgerLoops, type LedgerLoops } from './features/ledger/ledger.loops.js';
import { startScheduler } from './features/schedules/schedules.scheduler.js';
import { startArtifactRetention } from './features/artifacts/bundles.retention.js';
import { startQueueMaintenance } from './features/queue/queue.maintenance.js';
import { createQueueRuntime } from './features/queue/queue.runtime.js';
import type { StepDrivers } from './features/runs/runs.drivers.js';
import { createRunsRuntime, startRunSweeper } from './features/runs/runs.runtime.js';
import type { LeaderLoop } from './platform/leader.js';
import { createMemoryBus, type Bus } from './platform/bus.js';
import { createRedisBus } from './platform/bus.redis.js';
import { createMemoryCache, createRedisCache } from './platform/cache.js';
import type { Db } from './platform/db/index.js';
import { openDb } from './platform/db/index.js';
import { loadMigrations, migrate } from './platform/db/migrate.js';
import type { AppDeps } from './platform/deps.js';
import { createMetricsRegistry } from './platform/http/metrics.js';
import { createRedis } from './platform/redis.js';
import { VERSION } from './platform/version.js';

/** How block and deploy steps are carried out (approvals, deployments). */
const STEP_DRIVERS: StepDrivers = { block: blockStepDriver, deploy: deployStepDriver };

export interface OpenDepsOptions {
  log: FastifyBaseLogger;
  /** Tests hand in a prepared database (a clone of a migrated snapshot). */
  db?: Db;
  busChannel?: string;
}

/** Everything but the HTTP server; shared by `cairn serve`, the CLI and the tests. */
export async function openDeps(config: Config, opts: OpenDepsOptions): Promise<AppDeps> {
  const db = opts.db ?? (await openDb(config));
  const migrations = await loadMigrations();
  if (!opts.db) await migrate(db, migrations);

  let redis = null;
  let bus: Bus;
  const history = { size: config.eventsHistorySize, ttlMs: config.eventsHistoryTtlSeconds * 1000 };
  let cache = createMemoryCache();
  if (config.redisUrl) {
    redis = createRedis(config.redisUrl, 'main');
    const subscriber = createRedis(config.redisUrl, 'bus');
    await Promise.all([redis.connect(), subscriber.connect()]).catch((error: unknown) => {
      opts.log.warn({ err: error }, 'redis is not reachable yet; continuing degraded and retrying');
    });
    const redisBus = createRedisBus(redis, subscriber, opts.log, opts.busChannel, history);
    bus = {
      ...redisBus,
      close: async () => {
        await redisBus.close();
        subscriber.disconnect();
      },
    };
    cache = createRedisCache(redis);
  } else {
    bus = createMemoryBus(opts.log, history);
  }

  const metrics = createMetricsRegistry();
  registerDeploymentMetrics(metrics, db);
  const secret = config.jwtSecret ?? (await readOrCreateSetting(db, 'jwt_secret', randomBytes(48).toString('base64url')));
  const jwtSecret = new TextEncoder().encode(secret);
  const deps: AppDeps = {
    config,
    db,
    bus,
    cache,
    redis,
    jwtSecret,
    authenticator: createAuthenticator({ db, bus, jwtSecret }),
    queue: createQueueRuntime({ db, bus, metrics, log: opts.log }),
    // Block and deploy steps are carried out by approvals and deployments, through drivers.
    runs: createRunsRuntime(STEP_DRIVERS, opts.log, config.runAdvanceConcurrency),
    migrations,
    metrics,
    version: VERSION,
  };
  deps.runs.start(deps);
  listenForDeployJobs(deps, opts.log);
  return deps;
}

export async function closeDeps(deps: AppDeps): Promise<void> {
  deps.authenticator.close();
  await deps.runs.close();
  await deps.queue.close();
  await deps.bus.close();
  deps.redis?.disconnect();
  await deps.db.close();
}

export interface RunningServer {
  app: App;
  deps: AppDeps;
  loops: LedgerLoops;
  queueMaintenance: LeaderLoop;
  runSweeper: LeaderLoop;
  approvalExpiry: LeaderLoop;
  deploymentSweeper: LeaderLoop;
  scheduler: LeaderLoop;
  /** Null unless CAIRN_ARTIFACT_RETENTION_DAYS is set. */
  artifactRetention: LeaderLoop | null;
  url: string;
  close(): Promise<void>;
}

export async function startServer(config: Config): Promise<RunningServer> {
  const log = pino({ level: config.logLevel, base: { service: 'cairn' } }) as FastifyBaseLogger;
  const deps = await openDeps(config, { log });
  const login = await bootstrapFirstAdmin(deps, { embedded: !config.databaseUrl });
  const app = await buildApp(deps, { logger: log });
  const loops = await startLedgerLoops(deps, log);
  const queueMaintenance = startQueueMaintenance(deps, log);
  const runSweeper = startRunSweeper(deps, log);
  const approvalExpiry = startApprovalExpiry(deps, log);
  const deploymentSweeper = startDeploymentSweeper(deps, log);
  const scheduler = startScheduler(deps, log);
  const artifactRetention = startArtifactRetention(deps, log);
  const url = await app.listen({ host: config.host, port: config.port });
  // Printed plainly (not only logged) so a newcomer sees where to go and how to log in;
  // the generated password is never logged.
  process.stdout.write(`\nCairn is ready at ${url}  (API docs: ${url}/docs; storage: ${deps.db.kind})\n`);
  if (login) {
    log.info({ email: login.email, organization: login.orgSlug }, 'created the first organization and admin user');
    process.stdout.write(
      `First admin: ${login.email}${login.password ? `  password: ${login.password}` : ''}  organization: ${login.orgSlug}\n` +
        `Agent registration token (pool "default"): ${login.registrationToken}\n` +
        `  run an agent: cairn agent --url ${url} --token <that token>\n\n`,
    );
  }
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      await app.close(); // stops accepting, lets in-flight requests finish
      await Promise.all([
        loops.stop(),
        queueMaintenance.stop(),
        runSweeper.stop(),
        approvalExpiry.stop(),
        deploymentSweeper.stop(),
        scheduler.stop(),
        artifactRetention?.stop(),
      ]);
      await closeDeps(deps);
    })());
  return {
    app,
    deps,
    loops,
    queueMaintenance,
    runSweeper,
    approvalExpiry,
    deploymentSweeper,
    scheduler,
    artifactRetention,
    url,
    close,
  };
}
