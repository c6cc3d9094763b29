// Every SQL statement of webhooks: project secrets and deliveries (migrations/0009_schedules_webhooks.sql).
import type { Queryable } from '../../platform/db/index.js';
import type { Provider } from './webhooks.events.js';

export interface DeliveryRow {
  id: string;
  org_id: string;
  project_id: string;
  provider: Provider;
  delivery_id: string;
  event: string;
  action: string | null;
  outcome: 'received' | 'started' | 'ignored' | 'pong' | 'failed';
  reason: string | null;
  branch: string | null;
  commit: string | null;
  run_id: string | null;
  received_at: Date;
  updated_at: Date;
}

export type DeliveryView = DeliveryRow & { run_number: number | null };

export async function upsertSecret(
  tx: Queryable,
  s: { orgId: string; projectId: string; sealed: Buffer; createdBy: string },
): Promise<boolean> {
  const { rows } = await tx.query<{ replaced: boolean }>(
    `INSERT INTO project_webhook_secrets (project_id, org_id, sealed, created_by) VALUES ($1, $2, $3, $4)
     ON CONFLICT (project_id) DO UPDATE SET sealed = $3, created_by = $4, created_at = now()
     RETURNING (xmax <> 0) AS replaced`,
    [s.projectId, s.orgId, s.sealed, s.createdBy],
  );
  return rows[0]?.replaced === true;
}

/**
 * The sealed secret of a live project, looked up by project id alone: the hook routes are
 * public and the signature, checked next, is what authenticates them.
 */
export async function findSecretOfProject(
  db: Queryable,
  projectId: string,
): Promise<{ org_id: string; sealed: Buffer } | undefined> {
  const { rows } = await db.query<{ org_id: string; sealed: Buffer | Uint8Array }>(
    `SELECT w.org_id, w.sealed FROM project_webhook_secrets w
       JOIN projects p ON p.id = w.project_id AND p.deleted_at IS NULL
      WHERE w.project_id = $1`,
    [projectId],
  );
  const row = rows[0];
  return row ? { org_id: row.org_id, sealed: Buffer.from(row.sealed) } : undefined;
}

/** Records a delivery as being handled; undefined when this delivery id was seen before. */
export async function claimDelivery(
  db: Queryable,
  d: Pick<DeliveryRow, 'org_id' | 'project_id' | 'provider' | 'delivery_id' | 'event' | 'action' | 'branch' | 'commit'>,
): Promise<DeliveryRow | undefined> {
  const { rows } = await db.query<DeliveryRow>(
    `INSERT INTO webhook_deliveries (org_id, project_id, provider, delivery_id, event, action, outcome, branch, commit)
     VALUES ($1, $2, $3, $4, $5, $6, 'received', $7, $8)
     ON CONFLICT (project_id, provider, delivery_id) DO NOTHING RETURNING *`,
    [d.org_id, d.project_id, d.provider, d.delivery_id, d.event, d.action, d.branch, d.commit],
  );
  return rows[0];
}

export async function findDelivery(
  db: Queryable,
  projectId: string,
  provider: Provider,
  deliveryId: string,
): Promise<DeliveryView | undefined> {
  const { rows } = await db.query<DeliveryView>(
    `SELECT d.*, r.number AS run_number FROM webhook_deliveries d LEFT JOIN runs r ON r.id = d.run_id
      WHERE d.project_id = $1 AND d.provider = $2 AND d.delivery_id = $3`,
    [projectId, provider, deliveryId],
  );
  return rows[0];
}

/**
 * Takes a delivery over again when its first handling failed, or stopped half-way (the
 * server died) long enough ago: a redelivery of it may then start its run.
 */
export async function retakeDelivery(db: Queryable, id: string, staleSeconds: number): Promise<DeliveryRow | undefined> {
  const { rows } = await db.query<DeliveryRow>(
    `UPDATE webhook_deliveries SET outcome = 'received', reason = NULL, updated_at = now()
      WHERE id = $1 AND (outcome = 'failed' OR (outcome = 'received' AND updated_at < now() - make_interval(secs => $2)))
      RETURNING *`,
    [id, staleSeconds],
  );
  return rows[0];
}

export async function settleDelivery(
  db: Queryable,
  id: string,
  s: { outcome: DeliveryRow['outcome']; reason: string | null; runId: string | null },
): Promise<void> {
  await db.query('UPDATE webhook_deliveries SET outcome = $2, reason = $3, run_id = $4, updated_at = now() WHERE id = $1', [
    id,
    s.outcome,
    s.reason,
    s.runId,
  ]);
}

export async function listDeliveries(
  db: Queryable,
  f: {
    orgId: string;
    projectId: string;
    provider?: Provider;
    outcome?: string;
    before?: { at: string; id: string };
    limit: number;
  },
): Promise<DeliveryView[]> {
  const { rows } = await db.query<DeliveryView>(
    `SELECT d.*, r.number AS run_number FROM webhook_deliveries d LEFT JOIN runs r ON r.id = d.run_id
      WHERE d.org_id = $1 AND d.project_id = $2
        AND ($3::text IS NULL OR d.provider = $3)
        AND ($4::text IS NULL OR d.outcome = $4)
        AND ($5::timestamptz IS NULL OR (d.received_at, d.id) < ($5::timestamptz, $6::uuid))
      ORDER BY d.received_at DESC, d.id DESC LIMIT $7`,
    [f.orgId, f.projectId, f.provider ?? null, f.outcome ?? null, f.before?.at ?? null, f.before?.id ?? null, f.limit],
  );
  return rows;
}

/** Deliveries past the job-history retention (their dedup keys with them: providers retry for hours, not weeks). */
export async function pruneDeliveries(db: Queryable, days: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM webhook_deliveries WHERE id IN (
       SELECT id FROM webhook_deliveries WHERE received_at < now() - make_interval(days => $1) LIMIT $2)`,
    [days, limit],
  );
  return rowCount;
}
