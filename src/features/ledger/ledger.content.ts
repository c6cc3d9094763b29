// Leaf content rebuilt from stored rows. A leaf commits to the canonical JSON of its
// record (audit.record.ts: auditLeafContent); rebuilding it from the audit_events row and
// re-hashing is how exports show content and how tampering with that row is detected.
import { auditLeafContent, type AuditEvent } from '../audit/audit.record.js';
import type { AuditRow } from './ledger.leaves.queries.js';
import { canonicalJson, stringifiedIsCanonical } from './merkle/jcs.js';
import { canonicalLeafBytes, leafHash, leafHashOfCanonicalJson } from './merkle/index.js';

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

const json = (value: string | null): string => JSON.stringify(value);

/**
 * The leaf hash a stored audit row commits to: `leafHashOfContent(leafContentOfAuditRow(row))`,
 * with the record's fixed outer shape written straight in JCS key order (only the payload
 * goes through the general canonicalizer). The sequencer hashes every SQL-recorded
 * transition this way, three per job, and copying and sorting the outer object was most
 * of that work. JSON.stringify writes each string as JCS does, but for lone surrogates
 * (`stringifiedIsCanonical`): such text takes the general path.
 */
export function storedAuditLeafHash(row: AuditRow): Buffer {
  const payload = canonicalJson(row.payload);
  const text =
    `{"action":${json(row.action)},"actor":{"id":${json(row.actor_id)},"label":${json(row.actor_label)},` +
    `"type":${json(row.actor_type)}},"client_ip":${json(row.client_ip)},"id":${json(row.id)},"kind":"audit",` +
    `"occurred_at":${json(row.occurred_at)},"org_id":${json(row.org_id)},"payload":${payload},` +
    `"project_id":${json(row.project_id)},"request_id":${json(row.request_id)},` +
    `"resource":{"id":${json(row.resource_id)},"type":${json(row.resource_type)}},"v":1}`;
  if (payload === undefined || !stringifiedIsCanonical(text)) return leafHashOfContent(leafContentOfAuditRow(row));
  return leafHashOfCanonicalJson(text);
}
