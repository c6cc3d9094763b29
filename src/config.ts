// The only reader of process.env. Every setting is parsed and validated here, once, so a
// bad value stops the process at start with a message naming the setting, instead of
// failing later in a request.
import os from 'node:os';
import path from 'node:path';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** PostgreSQL connection string; absent means embedded PGlite. */
  readonly databaseUrl: string | undefined;
  readonly databasePoolSize: number;
  /** Runs advanced at once by this process (each holds a database connection while it works). */
  readonly runAdvanceConcurrency: number;
  /** Embedded data directory; `memory://` keeps PGlite in memory (tests). */
  readonly dataDir: string;
  readonly redisUrl: string | undefined;
  /** Secret for access JWTs; when absent one is generated and kept in the database. */
  readonly jwtSecret: string | undefined;
  readonly accessTokenTtlSeconds: number;
  readonly refreshTokenTtlSeconds: number;
  readonly corsOrigins: readonly string[];
  /** Requests per minute per client IP for unauthenticated calls. */
  readonly rateLimitAnonymous: number;
  /** Requests per minute per user session or API token. */
  readonly rateLimitAuthenticated: number;
  readonly bodyLimitBytes: number;
  readonly maxEventLoopDelayMs: number;
  /** Set when a TLS-terminating proxy sits in front: enables HSTS and trusts X-Forwarded-*. */
  readonly trustProxy: boolean;
  /** Event streams (WebSocket and SSE): ping interval; a connection silent for one interval is closed. */
  readonly eventsHeartbeatSeconds: number;
  /** Open event streams per user (or API token, or agent) on one replica. */
  readonly eventsConnectionsPerUser: number;
  /** Open event streams per client IP on one replica. */
  readonly eventsConnectionsPerIp: number;
  /** Unsent bytes a stream may queue before it is closed as a slow consumer. */
  readonly eventsMaxBufferBytes: number;
  /** Topics one stream may subscribe to. */
  readonly eventsMaxTopics: number;
  /** Events kept per organization for streams that reconnect and resume. */
  readonly eventsHistorySize: number;
  /** An organization's event history is dropped after this many seconds without events (Redis). */
  readonly eventsHistoryTtlSeconds: number;
  readonly adminEmail: string | undefined;
  readonly adminPassword: string | undefined;
  readonly instanceName: string;
  /** How long a claim holds a job without a heartbeat; agents renew it while alive. */
  readonly jobLeaseSeconds: number;
  /** How often agents are told to heartbeat. */
  readonly agentHeartbeatSeconds: number;
  /** Missed heartbeats after which an agent is lost and its jobs are retried elsewhere. */
  readonly agentLostAfterMissed: number;
  /** Longest a claim may long-poll for work. */
  readonly claimMaxWaitSeconds: number;
  /** Days finished jobs, their attempts and queue statistics are kept. */
  readonly jobHistoryDays: number;
  /** Largest log kept per job attempt; the rest is cut with a marker. */
  readonly jobLogMaxBytes: number;
  /** Largest single artifact an agent may upload. */
  readonly artifactMaxBytes: number;
  /** Days artifacts are kept after upload; 0 keeps them as long as their job's history. */
  readonly artifactRetentionDays: number;
  /** Where logs' and artifacts' blobs live (content-addressed); shared by all replicas. */
  readonly blobDir: string;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  }
  return raw;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env): Config {
  const logLevel = str(env, 'CAIRN_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('CAIRN_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const jwtSecret = str(env, 'CAIRN_JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError('CAIRN_JWT_SECRET', 'must be at least 32 characters');
  }
  const adminEmail = str(env, 'CAIRN_ADMIN_EMAIL');
  const adminPassword = str(env, 'CAIRN_ADMIN_PASSWORD');
  if (adminEmail !== undefined && !/^[^@\s]+@[^@\s]+$/.test(adminEmail)) {
    throw new ConfigError('CAIRN_ADMIN_EMAIL', 'is not an email address');
  }
  if (adminPassword !== undefined && adminPassword.length < 12) {
    throw new ConfigError('CAIRN_ADMIN_PASSWORD', 'must be at least 12 characters');
  }
  const dataDir = str(env, 'CAIRN_DATA_DIR') ?? '.cairn';
  const agentHeartbeatSeconds = int(env, 'CAIRN_AGENT_HEARTBEAT_SECONDS', 10, 1, 600);
  const jobLeaseSeconds = int(env, 'CAIRN_JOB_LEASE_SECONDS', 30, 5, 3600);
  if (jobLeaseSeconds < agentHeartbeatSeconds * 2) {
    throw new ConfigError(
      'CAIRN_JOB_LEASE_SECONDS',
      `must be at least twice CAIRN_AGENT_HEARTBEAT_SECONDS (${agentHeartbeatSeconds}), or leases lapse between heartbeats`,
    );
  }
  const blobDir = str(env, 'CAIRN_BLOB_DIR');
  return Object.freeze({
    host: str(env, 'HOST') ?? '127.0.0.1',
    port: int(env, 'PORT', 3000, 0, 65535),
    logLevel: logLevel as Config['logLevel'],
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databasePoolSize: int(env, 'CAIRN_DB_POOL_SIZE', 20, 1, 500),
    runAdvanceConcurrency: int(env, 'CAIRN_RUN_ADVANCE_CONCURRENCY', 32, 1, 500),
    dataDir: dataDir === 'memory://' ? dataDir : path.resolve(dataDir),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    jwtSecret,
    accessTokenTtlSeconds: int(env, 'CAIRN_ACCESS_TOKEN_TTL', 900, 30, 86_400),
    refreshTokenTtlSeconds: int(env, 'CAIRN_REFRESH_TOKEN_TTL', 30 * 86_400, 300, 365 * 86_400),
    corsOrigins: Object.freeze(
      (str(env, 'CAIRN_CORS_ORIGINS') ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    ),
    rateLimitAnonymous: int(env, 'CAIRN_RATE_LIMIT_ANONYMOUS', 100, 1, 10_000_000),
    rateLimitAuthenticated: int(env, 'CAIRN_RATE_LIMIT_AUTHENTICATED', 6000, 1, 100_000_000),
    bodyLimitBytes: int(env, 'CAIRN_BODY_LIMIT', 1_048_576, 1024, 1_073_741_824),
    maxEventLoopDelayMs: int(env, 'CAIRN_MAX_EVENT_LOOP_DELAY_MS', 1000, 0, 60_000),
    trustProxy: bool(env, 'CAIRN_TRUST_PROXY', false),
    eventsHeartbeatSeconds: int(env, 'CAIRN_EVENTS_HEARTBEAT_SECONDS', 30, 1, 3600),
    eventsConnectionsPerUser: int(env, 'CAIRN_EVENTS_CONNECTIONS_PER_USER', 50, 1, 10_000_000),
    eventsConnectionsPerIp: int(env, 'CAIRN_EVENTS_CONNECTIONS_PER_IP', 1000, 1, 10_000_000),
    eventsMaxBufferBytes: int(env, 'CAIRN_EVENTS_MAX_BUFFER_BYTES', 524_288, 16_384, 1_073_741_824),
    eventsMaxTopics: int(env, 'CAIRN_EVENTS_MAX_TOPICS', 100, 1, 10_000),
    eventsHistorySize: int(env, 'CAIRN_EVENTS_HISTORY', 1000, 10, 1_000_000),
    eventsHistoryTtlSeconds: int(env, 'CAIRN_EVENTS_HISTORY_TTL', 86_400, 60, 30 * 86_400),
    adminEmail,
    adminPassword,
    instanceName: str(env, 'CAIRN_INSTANCE_NAME') ?? 'cairn.local',
    jobLeaseSeconds,
    agentHeartbeatSeconds,
    agentLostAfterMissed: int(env, 'CAIRN_AGENT_LOST_AFTER_MISSED', 3, 1, 100),
    claimMaxWaitSeconds: int(env, 'CAIRN_CLAIM_MAX_WAIT_SECONDS', 30, 0, 120),
    jobHistoryDays: int(env, 'CAIRN_JOB_HISTORY_DAYS', 30, 1, 3650),
    jobLogMaxBytes: int(env, 'CAIRN_JOB_LOG_MAX_BYTES', 16 * 1_048_576, 1024, 1_073_741_824),
    artifactMaxBytes: int(env, 'CAIRN_ARTIFACT_MAX_BYTES', 1_073_741_824, 1024, 68_719_476_736),
    artifactRetentionDays: int(env, 'CAIRN_ARTIFACT_RETENTION_DAYS', 0, 0, 36_500),
    // In memory mode (tests) blobs go to a per-process temporary directory.
    blobDir: blobDir
      ? path.resolve(blobDir)
      : dataDir === 'memory://'
        ? path.join(os.tmpdir(), `cairn-blobs-${process.pid}`)
        : path.join(path.resolve(dataDir), 'blobs'),
  });
}
