import type { AppDeps } from '../../platform/deps.js';
import { pendingMigrations } from '../../platform/db/migrate.js';
import { databaseVersion } from './health.queries.js';

interface Component {
  name: string;
  ok: boolean;
  detail: string;
  version?: string;
}

const PROBE_TIMEOUT_MS = 2_000;

/** A probe that hangs (database behind a dead network) must fail, not hang the probe. */
function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function checkDatabase(deps: AppDeps): Promise<Component[]> {
  try {
    const version = await withTimeout(databaseVersion(deps.db), 'the database');
    const database: Component = { name: 'database', ok: true, detail: deps.db.kind, version };
    try {
      const pending = await withTimeout(pendingMigrations(deps.db, deps.migrations), 'the database');
      return [
        database,
        pending.length === 0
          ? { name: 'migrations', ok: true, detail: `${deps.migrations.length} applied` }
          : { name: 'migrations', ok: false, detail: `pending: ${pending.join(', ')}` },
      ];
    } catch (error) {
      return [database, { name: 'migrations', ok: false, detail: (error as Error).message }];
    }
  } catch (error) {
    return [
      { name: 'database', ok: false, detail: `unreachable: ${(error as Error).message}` },
      { name: 'migrations', ok: false, detail: 'unknown (database unreachable)' },
    ];
  }
}

async function checkRedis(deps: AppDeps): Promise<Component[]> {
  if (!deps.redis) return [];
  const bus = deps.bus.status();
  try {
    await withTimeout(deps.redis.ping(), 'redis');
    return [
      { name: 'redis', ok: true, detail: 'reachable' },
      { name: 'bus', ok: bus.ok, detail: bus.detail },
    ];
  } catch (error) {
    return [
      {
        name: 'redis',
        ok: false,
        detail: `unreachable: ${(error as Error).message}; degraded: rate limits not enforced, caches per replica`,
      },
      { name: 'bus', ok: false, detail: `degraded: ${bus.detail}` },
    ];
  }
}

/**
 * The database is required: without it nothing works, so the replica reports not_ready
 * (503) and leaves the load balancer. Redis is not: without it a replica still serves
 * every request, only events stay on this replica and limits and caches become local, so
 * it reports `degraded` with 200. A 503 there would take every replica out at once when
 * Redis dies, turning a degraded service into an outage.
 */
export async function checkReadiness(deps: AppDeps) {
  const strip = ({ name, ok, detail }: Component) => ({ name, ok, detail });
  const required = (await checkDatabase(deps)).map(strip);
  const optional = (await checkRedis(deps)).map(strip);
  const status = !required.every((c) => c.ok)
    ? ('not_ready' as const)
    : optional.every((c) => c.ok)
      ? ('ready' as const)
      : ('degraded' as const);
  return { status, components: [...required, ...optional] };
}

export async function describeComponents(deps: AppDeps) {
  const components = [...(await checkDatabase(deps)), ...(await checkRedis(deps))];
  if (deps.redis) {
    const info = await withTimeout(deps.redis.info('server'), 'redis').catch(() => '');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    const redis = components.find((c) => c.name === 'redis');
    if (redis && version) redis.version = version;
  }
  const memory = process.memoryUsage();
  return {
    status: components.every((c) => c.ok) ? 'ok' : 'degraded',
    version: deps.version,
    node: process.version,
    uptime_seconds: Math.round(process.uptime()),
    storage: deps.db.kind === 'pglite' ? 'embedded (PGlite)' : 'PostgreSQL',
    components,
    memory: { rss_bytes: memory.rss, heap_used_bytes: memory.heapUsed },
  };
}
