import type { Queryable } from '../../platform/db/index.js';
import type { AuditEvent } from './audit.record.js';

export async function insertAuditEvent(db: Queryable, e: AuditEvent, leafHash: Buffer): Promise<void> {
  await db.query(
    `WITH audit AS (
       INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action,
                                 resource_type, resource_id, project_id, request_id, client_ip, payload)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       RETURNING id, org_id)
     INSERT INTO ledger_queue (org_id, kind, ref_id, leaf_hash)
     SELECT org_id, 'audit', id, $14 FROM audit`,
    [
      e.id,
      e.org_id,
      e.occurred_at,
      e.actor.type,
      e.actor.id,
      e.actor.label,
      e.action,
      e.resource.type,
      e.resource.id,
      e.project_id,
      e.request_id,
      e.client_ip,
      JSON.stringify(e.payload),
      leafHash,
    ],
  );
}

/** Many audit rows and their queued leaves in one statement (batched transitions). */
export async function insertAuditEvents(
  db: Queryable,
  events: readonly AuditEvent[],
  leafHashes: readonly Buffer[],
): Promise<void> {
  if (events.length === 0) return;
  const col = <T>(pick: (e: AuditEvent) => T) => events.map(pick);
  await db.query(
    `WITH audit AS (
       INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action,
                                 resource_type, resource_id, project_id, request_id, client_ip, payload)
       SELECT id, org_id, occurred_at, actor_type, actor_id, actor_label, action,
              resource_type, resource_id, project_id, request_id, client_ip, payload::jsonb
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::uuid[], $11::text[], $12::text[], $13::text[])
              WITH ORDINALITY AS e(id, org_id, occurred_at, actor_type, actor_id, actor_label, action,
                                   resource_type, resource_id, project_id, request_id, client_ip, payload, ord)
        ORDER BY ord
       RETURNING id, org_id)
     INSERT INTO ledger_queue (org_id, kind, ref_id, leaf_hash)
     SELECT a.org_id, 'audit', a.id, h.hash
       FROM unnest($1::uuid[], $14::bytea[]) WITH ORDINALITY AS h(id, hash, ord)
       JOIN audit a ON a.id = h.id
      ORDER BY h.ord`,
    [
      col((e) => e.id),
      col((e) => e.org_id),
      col((e) => e.occurred_at),
      col((e) => e.actor.type),
      col((e) => e.actor.id),
      col((e) => e.actor.label),
      col((e) => e.action),
      col((e) => e.resource.type),
      col((e) => e.resource.id),
      col((e) => e.project_id),
      col((e) => e.request_id),
      col((e) => e.client_ip),
      col((e) => JSON.stringify(e.payload)),
      leafHashes,
    ],
  );
}

/** Where SQL-recorded audit events take their actor from (see auditCtes). */
export type AuditSource = { firstParam: number } | { actorJoin: { sql: string; alias: string } };

/**
 * CTEs that record one audit event per row of the CTE `source`, in the same statement as
 * the mutation that produced those rows — for high-volume transitions (job claims,
 * starts, completions), where a second statement per transition would cost more than
 * the transition itself. `source` must have `id`, `org_id` and `project_id` columns;
 * `payload` is a jsonb expression over its alias `s`. The leaf is queued without a hash:
 * the ledger sequencer hashes it from the stored row, exactly as exports and integrity
 * checks rebuild it. The actor is five parameters from `$firstParam` (see `auditParams`),
 * or, where one statement acts for several actors, `actorJoin`: a join on `s` whose alias
 * has the columns actor_type, actor_id, actor_label, request_id and client_ip.
 */
export function auditCtes(
  opts: {
    source: string;
    /** An SQL expression over `s`, e.g. `'job.claimed'` or `'job.' || s.state`. */
    action: string;
    resourceType: string;
    payload: string;
    /** An SQL expression over `s` for each event's request id, before the actor's (when null). */
    requestId?: string;
  } & AuditSource,
): string {
  if (!/^[a-z_]+$/.test(opts.resourceType) || !/^[a-z_]+$/.test(opts.source)) {
    throw new Error(`audit source and resource type must be plain identifiers: ${opts.source}, ${opts.resourceType}`);
  }
  const actor = 'firstParam' in opts ? actorParams(opts.firstParam) : actorColumns(opts.actorJoin.alias);
  return `${opts.source}_audit AS (
       INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, actor_label, action,
                                 resource_type, resource_id, project_id, request_id, client_ip, payload)
       SELECT gen_random_uuid(), s.org_id, date_trunc('milliseconds', now()), ${actor.type}, ${actor.id}, ${actor.label},
              ${opts.action}, '${opts.resourceType}', s.id::text, s.project_id, ${opts.requestId ? `coalesce(${opts.requestId}, ${actor.requestId})` : actor.requestId}, ${actor.clientIp}, ${opts.payload}
         FROM ${opts.source} s ${'actorJoin' in opts ? opts.actorJoin.sql : ''}
       RETURNING id, org_id),
     ${opts.source}_leaves AS (
       INSERT INTO ledger_queue (org_id, kind, ref_id) SELECT org_id, 'audit', id FROM ${opts.source}_audit)`;
}

const actorParams = (p: number) => ({
  type: `$${p}`,
  id: `$${p + 1}`,
  label: `$${p + 2}`,
  requestId: `$${p + 3}::text`,
  clientIp: `$${p + 4}`,
});
const actorColumns = (alias: string) => ({
  type: `${alias}.actor_type`,
  id: `${alias}.actor_id`,
  label: `${alias}.actor_label`,
  requestId: `${alias}.request_id`,
  clientIp: `${alias}.client_ip`,
});

/** Who an SQL-recorded audit event names (an AuthContext fits). */
export interface AuditActor {
  actor: { type: string; id: string; label: string };
  requestId: string;
  clientIp: string | null;
}

/** The five parameters `auditCtes` expects, in order. */
export function auditParams(auth: AuditActor): unknown[] {
  return [auth.actor.type, auth.actor.id, auth.actor.label, auth.requestId, auth.clientIp];
}

export interface AuditRow {
  id: string;
  org_id: string;
  occurred_at: Date;
  actor_type: string;
  actor_id: string;
  actor_label: string;
  action: string;
  resource_type: string;
  resource_id: string;
  project_id: string | null;
  request_id: string | null;
  client_ip: string | null;
  payload: Record<string, unknown>;
}

export interface AuditFilter {
  orgId: string;
  actorId?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  projectId?: string;
  since?: string;
  until?: string;
  before?: { occurredAt: string; id: string };
  limit: number;
}

const AUDIT_COLUMNS = `id, org_id, occurred_at, actor_type, actor_id, actor_label, action, resource_type,
  resource_id, project_id, request_id, client_ip, payload`;

/** Newest first; `action` ending in `.*` matches a prefix (e.g. `project.*`). */
export async function listAuditEvents(db: Queryable, f: AuditFilter): Promise<AuditRow[]> {
  const actionPrefix = f.action?.endsWith('.*') ? f.action.slice(0, -1) : null;
  const { rows } = await db.query<AuditRow>(
    `SELECT ${AUDIT_COLUMNS} FROM audit_events
      WHERE org_id = $1
        AND ($2::text IS NULL OR actor_id = $2)
        AND ($3::text IS NULL OR action = $3)
        AND ($4::text IS NULL OR starts_with(action, $4))
        AND ($5::text IS NULL OR resource_type = $5)
        AND ($6::text IS NULL OR resource_id = $6)
        AND ($7::uuid IS NULL OR project_id = $7)
        AND ($8::timestamptz IS NULL OR occurred_at >= $8)
        AND ($9::timestamptz IS NULL OR occurred_at < $9)
        AND ($10::timestamptz IS NULL OR (occurred_at, id) < ($10::timestamptz, $11::uuid))
      ORDER BY occurred_at DESC, id DESC
      LIMIT $12`,
    [
      f.orgId,
      f.actorId ?? null,
      actionPrefix ? null : (f.action ?? null),
      actionPrefix,
      f.resourceType ?? null,
      f.resourceId ?? null,
      f.projectId ?? null,
      f.since ?? null,
      f.until ?? null,
      f.before?.occurredAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

export async function findAuditEvent(db: Queryable, orgId: string, id: string): Promise<AuditRow | undefined> {
  const { rows } = await db.query<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE org_id = $1 AND id = $2`, [
    orgId,
    id,
  ]);
  return rows[0];
}
