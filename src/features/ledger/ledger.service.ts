// Reads behind the ledger routes that are more than one call: entries (with tenancy-aware
// content) and the instance's public key.
import { can, type AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import { NotFoundError } from '../../platform/errors.js';
import { leafContentOfAuditRow } from './ledger.content.js';
import type { LedgerIdentity } from './ledger.identity.js';
import { CheckpointSizes, inclusionProof } from './ledger.proofs.js';
import { leafWithContent } from './ledger.leaves.queries.js';
import { latestCheckpoint } from './ledger.queries.js';

export interface EntryView {
  index: number;
  leaf_hash: string;
  kind: string;
  org_id?: string;
  content?: Record<string, unknown> | null;
  inclusion_proof: { size: number; path: string[] } | null;
}

/**
 * A leaf's hash and position are public (they reveal nothing); its organization only to
 * members of that organization, and its content only to those with audit:read there.
 */
export async function getEntry(db: Queryable, auth: AuthContext | null, index: number): Promise<EntryView> {
  const contentOrg = auth && can(auth, 'audit:read') ? auth.orgId : null;
  const [leaf, latest] = await Promise.all([leafWithContent(db, index, contentOrg), latestCheckpoint(db)]);
  if (!leaf) throw new NotFoundError(`Ledger entry ${index}`, 'entry_not_found');
  const view: EntryView = { index, leaf_hash: leaf.leaf_hash.toString('base64'), kind: leaf.kind, inclusion_proof: null };
  if (auth && auth.orgId === leaf.org_id) view.org_id = leaf.org_id;
  if (contentOrg && contentOrg === leaf.org_id) view.content = leaf.audit ? leafContentOfAuditRow(leaf.audit) : null;
  if (latest && index < latest.size) {
    const sizes = new CheckpointSizes();
    sizes.note(latest.size);
    const proof = await inclusionProof(db, index, latest.size, sizes);
    view.inclusion_proof = { size: proof.size, path: proof.path.map((h) => h.toString('base64')) };
  }
  return view;
}

export function publicKeyView(identity: LedgerIdentity) {
  return {
    key_name: identity.signer.keyName,
    origin: identity.origin,
    verifier_key: identity.signer.verifierKey,
    public_key: identity.signer.publicKey.toString('base64'),
    algorithm: 'ed25519' as const,
  };
}
