// "This call produced this audit event": looks the event up in the audit trail and in the
// ledger queue/leaves (the leaf must exist for every audited mutation).
import { expect } from 'vitest';
import type { AuditRow } from '../../src/features/audit/audit.queries.js';
import type { TestApp } from './app.js';

export interface ExpectedAudit {
  orgId: string;
  action: string;
  resourceId?: string;
  actorId?: string;
  requestId?: string;
}

export async function expectAuditEvent(t: TestApp, e: ExpectedAudit): Promise<AuditRow> {
  const { rows } = await t.deps.db.query<AuditRow & { leaf_count: number }>(
    `SELECT a.*,
            (SELECT count(*)::int FROM ledger_queue q WHERE q.ref_id = a.id)
          + (SELECT count(*)::int FROM ledger_leaves l WHERE l.ref_id = a.id) AS leaf_count
       FROM audit_events a
      WHERE a.org_id = $1 AND a.action = $2
        AND ($3::text IS NULL OR a.resource_id = $3)
        AND ($4::text IS NULL OR a.actor_id = $4)
        AND ($5::text IS NULL OR a.request_id = $5)
      ORDER BY a.occurred_at DESC LIMIT 1`,
    [e.orgId, e.action, e.resourceId ?? null, e.actorId ?? null, e.requestId ?? null],
  );
  const row = rows[0];
  expect(row, `audit event ${e.action} for ${e.resourceId ?? 'any resource'}`).toBeDefined();
  expect(row!.leaf_count, 'the audit event has exactly one ledger leaf').toBe(1);
  return row!;
}
