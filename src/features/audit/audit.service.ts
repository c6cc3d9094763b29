import type { AuthContext } from '../../platform/auth.js';
import type { AppDeps } from '../../platform/deps.js';
import { NotFoundError } from '../../platform/errors.js';
import { decodeCursor, encodeCursor } from '../../platform/http/schemas.js';
import { findAuditEvent, listAuditEvents, type AuditRow } from './audit.queries.js';
import type { AuditEvent } from './audit.record.js';

type Deps = Pick<AppDeps, 'db'>;

/** The stored row as the API shows it: the same shape the ledger leaf commits to. */
export function auditEventFromRow(r: AuditRow): AuditEvent {
  return {
    id: r.id,
    org_id: r.org_id,
    occurred_at: r.occurred_at.toISOString(),
    actor: { type: r.actor_type, id: r.actor_id, label: r.actor_label },
    action: r.action,
    resource: { type: r.resource_type, id: r.resource_id },
    project_id: r.project_id,
    request_id: r.request_id,
    client_ip: r.client_ip,
    payload: r.payload,
  };
}

export interface AuditQuery {
  limit?: number;
  cursor?: string;
  actor_id?: string;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  project_id?: string;
  since?: string;
  until?: string;
}

export async function listAudit(deps: Deps, auth: AuthContext, q: AuditQuery) {
  const limit = q.limit ?? 50;
  const cursor = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = await listAuditEvents(deps.db, {
    orgId: auth.orgId,
    actorId: q.actor_id,
    action: q.action,
    resourceType: q.resource_type,
    resourceId: q.resource_id,
    projectId: q.project_id,
    since: q.since,
    until: q.until,
    before: cursor ? { occurredAt: String(cursor[0]), id: String(cursor[1]) } : undefined,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit).map(auditEventFromRow);
  const last = page.at(-1);
  return { items: page, next_cursor: rows.length > limit && last ? encodeCursor([last.occurred_at, last.id]) : null };
}

export async function getAuditEvent(deps: Deps, auth: AuthContext, id: string) {
  const row = await findAuditEvent(deps.db, auth.orgId, id);
  if (!row) throw new NotFoundError('Audit event');
  return auditEventFromRow(row);
}
