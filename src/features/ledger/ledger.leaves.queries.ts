// Reading leaves, joined to the audit rows they commit to (exports, entries, integrity).
import type { Queryable } from '../../platform/db/index.js';
import type { AuditRow as StoredAuditRow } from '../audit/audit.queries.js';
import { toBuffer, type Bytes } from './ledger.queries.js';

/** An audit_events row as the leaf content needs it (occurred_at already in ISO form). */
export type AuditRow = Omit<StoredAuditRow, 'occurred_at'> & { occurred_at: string };

export interface LeafRow {
  idx: number;
  leaf_hash: Buffer;
  org_id: string;
  kind: string;
  ref_id: string;
  /** The referenced audit row, when it was asked for and exists. */
  audit: AuditRow | null;
}

// The stored timestamp printed exactly as recordAudit wrote it (Date#toISOString), so the
// rebuilt leaf content hashes the same whichever driver reads it.
const AUDIT_COLUMNS = `a.id AS a_id, a.org_id AS a_org_id,
  to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS a_occurred_at,
  a.actor_type AS a_actor_type, a.actor_id AS a_actor_id, a.actor_label AS a_actor_label, a.action AS a_action,
  a.resource_type AS a_resource_type, a.resource_id AS a_resource_id, a.project_id AS a_project_id,
  a.request_id AS a_request_id, a.client_ip AS a_client_ip, a.payload AS a_payload`;

type RawLeaf = Omit<LeafRow, 'leaf_hash' | 'audit'> & { leaf_hash: Bytes } & Record<`a_${string}`, unknown>;

function leafFromRaw(r: RawLeaf): LeafRow {
  const audit: AuditRow | null =
    r.a_id == null
      ? null
      : {
          id: r.a_id as string,
          org_id: r.a_org_id as string,
          occurred_at: r.a_occurred_at as string,
          actor_type: r.a_actor_type as string,
          actor_id: r.a_actor_id as string,
          actor_label: r.a_actor_label as string,
          action: r.a_action as string,
          resource_type: r.a_resource_type as string,
          resource_id: r.a_resource_id as string,
          project_id: (r.a_project_id as string | null) ?? null,
          request_id: (r.a_request_id as string | null) ?? null,
          client_ip: (r.a_client_ip as string | null) ?? null,
          payload: r.a_payload as Record<string, unknown>,
        };
  return { idx: r.idx, leaf_hash: toBuffer(r.leaf_hash), org_id: r.org_id, kind: r.kind, ref_id: r.ref_id, audit };
}

/** One leaf with its audit row, when the row belongs to `contentOrgId` (else audit = null). */
export async function leafWithContent(db: Queryable, idx: number, contentOrgId: string | null): Promise<LeafRow | undefined> {
  const { rows } = await db.query<RawLeaf>(
    `SELECT l.idx, l.leaf_hash, l.org_id, l.kind, l.ref_id, ${AUDIT_COLUMNS}
       FROM ledger_leaves l
       LEFT JOIN audit_events a
              ON l.kind = 'audit' AND a.id = l.ref_id AND a.org_id = l.org_id AND l.org_id = $2::uuid
      WHERE l.idx = $1`,
    [idx, contentOrgId],
  );
  return rows[0] && leafFromRaw(rows[0]);
}

/**
 * Leaves with idx in [from, to), at most `limit`, in index order, joined to their audit
 * rows: all of them when `contentOrgId` is null (integrity check), otherwise only those
 * of that organization (exports never read another tenant's content).
 */
export async function leafPage(
  db: Queryable,
  opts: { from: number; to: number; limit: number; contentOrgId: string | null; allContent: boolean },
): Promise<LeafRow[]> {
  const { rows } = await db.query<RawLeaf>(
    `SELECT l.idx, l.leaf_hash, l.org_id, l.kind, l.ref_id, ${AUDIT_COLUMNS}
       FROM ledger_leaves l
       LEFT JOIN audit_events a
              ON l.kind = 'audit' AND a.id = l.ref_id AND ($5 OR (a.org_id = l.org_id AND l.org_id = $4::uuid))
      WHERE l.idx >= $1 AND l.idx < $2
      ORDER BY l.idx
      LIMIT $3`,
    [opts.from, opts.to, opts.limit, opts.contentOrgId, opts.allContent],
  );
  return rows.map(leafFromRaw);
}

/** The leaf indexes of the given audit events (or other refs), for "where is this in the log". */
export async function leafIndexesOfRefs(db: Queryable, refIds: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ ref_id: string; idx: number }>(
    'SELECT ref_id, idx FROM ledger_leaves WHERE ref_id = ANY($1::uuid[])',
    [refIds],
  );
  return new Map(rows.map((r) => [r.ref_id, r.idx]));
}

/**
 * Queued leaves written without a hash (audit rows recorded by SQL in the statement of a
 * high-volume transition), oldest first, with their audit rows so the sequencer can hash
 * them. `audit` is null if the row is gone (deleted behind Cairn's back before sequencing).
 *
 * No row locks: only a sequencer deletes queue rows, and it holds the head row's lock for
 * its whole batch, so nothing can take these rows meanwhile. Locking them cost a heap write
 * and a WAL record per leaf, for rows the same transaction deletes a moment later.
 */
export async function queuedLeavesWithoutHash(
  tx: Queryable,
  limit: number,
): Promise<{ seq: number; ref_id: string; audit: AuditRow | null }[]> {
  const { rows } = await tx.query<RawLeaf & { seq: number }>(
    `SELECT q.seq, 0 AS idx, ''::bytea AS leaf_hash, q.org_id, q.kind, q.ref_id, ${AUDIT_COLUMNS}
       FROM (SELECT seq, org_id, kind, ref_id FROM ledger_queue WHERE leaf_hash IS NULL
              ORDER BY seq LIMIT $1) q
       LEFT JOIN audit_events a ON q.kind = 'audit' AND a.id = q.ref_id
      ORDER BY q.seq`,
    [limit],
  );
  return rows.map((r) => ({ seq: r.seq, ref_id: r.ref_id, audit: leafFromRaw(r).audit }));
}
