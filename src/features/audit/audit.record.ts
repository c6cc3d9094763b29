// Recording an audit event is one call inside the mutation's transaction:
//   await recordAudit(tx, auth, { action: 'project.created', resource: ['project', id], after })
// It writes the audit row and queues its ledger leaf in one statement.
import { randomUUID } from 'node:crypto';
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import { canonicalLeafBytes, leafHash } from '../ledger/merkle/index.js';
import { insertAuditEvent, insertAuditEvents } from './audit.queries.js';

export interface AuditInput {
  /** `<resource>.<verb>`, e.g. `project.created`. */
  action: string;
  resource: readonly [type: string, id: string];
  projectId?: string | null;
  before?: unknown;
  after?: unknown;
  /** Anything else worth keeping (e.g. a reason). */
  details?: Record<string, unknown>;
}

export interface AuditEvent {
  id: string;
  org_id: string;
  occurred_at: string;
  actor: { type: string; id: string; label: string };
  action: string;
  resource: { type: string; id: string };
  project_id: string | null;
  request_id: string | null;
  client_ip: string | null;
  payload: Record<string, unknown>;
}

const SECRET_KEY = /pass(word)?|secret|token|hash|private|credential|api[_-]?key/i;

/** Drops values under secret-looking keys, at any depth, so the trail never holds them. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      if (inner === undefined) continue;
      out[key] = SECRET_KEY.test(key) ? '[redacted]' : redactSecrets(inner);
    }
    return out;
  }
  return value;
}

/**
 * The exact JSON the ledger leaf commits to. Also rebuilt from a stored row when the log
 * is exported or checked for tampering, so it must depend only on stored columns.
 */
export function auditLeafContent(event: AuditEvent): Record<string, unknown> {
  return { v: 1, kind: 'audit', ...event };
}

export function auditLeafHash(event: AuditEvent): Buffer {
  return leafHash(canonicalLeafBytes(auditLeafContent(event)));
}

function buildAuditEvent(auth: AuthContext, input: AuditInput): AuditEvent {
  const payload = redactSecrets({
    ...(input.before !== undefined ? { before: input.before } : {}),
    ...(input.after !== undefined ? { after: input.after } : {}),
    ...(input.details ?? {}),
  }) as Record<string, unknown>;
  // JSON round trip: the payload must hash the same now and when read back from jsonb.
  return {
    id: randomUUID(),
    org_id: auth.orgId,
    occurred_at: new Date().toISOString(),
    actor: { type: auth.actor.type, id: auth.actor.id, label: auth.actor.label },
    action: input.action,
    resource: { type: input.resource[0], id: input.resource[1] },
    project_id: input.projectId ?? null,
    request_id: auth.requestId,
    client_ip: auth.clientIp,
    payload: JSON.parse(JSON.stringify(payload)) as Record<string, unknown>,
  };
}

export async function recordAudit(tx: Queryable, auth: AuthContext, input: AuditInput): Promise<AuditEvent> {
  const event = buildAuditEvent(auth, input);
  await insertAuditEvent(tx, event, auditLeafHash(event));
  return event;
}

/**
 * Many audit events in one statement, for batched transitions (a claim of 50 jobs is 50
 * events). Each entry may carry its own caller (the reaper acts for many organizations).
 */
export async function recordAuditMany(
  tx: Queryable,
  entries: readonly { auth: AuthContext; input: AuditInput }[],
): Promise<AuditEvent[]> {
  const events = entries.map((e) => buildAuditEvent(e.auth, e.input));
  await insertAuditEvents(tx, events, events.map(auditLeafHash));
  return events;
}
