// Leaf content rebuilt from stored rows. A leaf commits to the canonical JSON of its
// record (audit.record.ts: auditLeafContent); rebuilding it from the audit_events row and
// re-hashing is how exports show content and how tampering with that row is detected.
import { auditLeafContent, type AuditEvent } from '../audit/audit.record.js';
import type { AuditRow } from './ledger.leaves.queries.js';
import { canonicalLeafBytes, leafHash } from './merkle/index.js';

export function auditEventFromRow(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    org_id: row.org_id,
    occurred_at: row.occurred_at,
    actor: { type: row.actor_type, id: row.actor_id, label: row.actor_label },
    action: row.action,
    resource: { type: row.resource_type, id: row.resource_id },
    project_id: row.project_id,
    request_id: row.request_id,
    client_ip: row.client_ip,
    payload: row.payload,
  };
}

/** The canonical leaf JSON (as an object) a stored audit row commits to. */
export function leafContentOfAuditRow(row: AuditRow): Record<string, unknown> {
  return auditLeafContent(auditEventFromRow(row));
}

/** The leaf hash a piece of leaf content must have: SHA-256(0x00 ‖ JCS(content)). */
export function leafHashOfContent(content: unknown): Buffer {
  return leafHash(canonicalLeafBytes(content));
}
