// TypeBox schemas of the ledger API. Hashes are standard base64 (as in checkpoints);
// sizes and indexes are integers up to 2^53 - 1.
import { Type } from 'typebox';

const MAX_INDEX = Number.MAX_SAFE_INTEGER;
const Hash = Type.String({ description: 'SHA-256 hash, base64', contentEncoding: 'base64' });
const Index = Type.Integer({ minimum: 0, maximum: MAX_INDEX });
const Size = Type.Integer({ minimum: 0, maximum: MAX_INDEX });

export const CheckpointSchema = Type.Object({
  size: Type.Integer({ description: 'Leaves in the tree this checkpoint signs' }),
  root: Hash,
  origin: Type.String({ description: 'The log identity line, "<instance name>/ledger"' }),
  note: Type.String({ description: 'The C2SP signed checkpoint (signed-note text), what verifiers check' }),
  created_at: Type.String({ format: 'date-time' }),
});

export const SizeParams = Type.Object({ size: Size });
export const IndexParams = Type.Object({ index: Index });

export const PublicKeySchema = Type.Object({
  key_name: Type.String(),
  origin: Type.String(),
  verifier_key: Type.String({ description: 'signed-note verifier key: <name>+<key id hex>+<base64(0x01 ‖ key)>' }),
  public_key: Type.String({ description: 'Raw 32-byte Ed25519 public key, base64' }),
  algorithm: Type.Literal('ed25519'),
});

export const InclusionQuery = Type.Object(
  {
    index: Index,
    size: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_INDEX, description: 'Tree size; default the latest checkpoint' }),
    ),
  },
  { additionalProperties: false },
);

export const InclusionProofSchema = Type.Object({
  index: Type.Integer(),
  size: Type.Integer(),
  leaf_hash: Hash,
  path: Type.Array(Hash, { description: 'RFC 9162 inclusion path, leaf to root' }),
});

export const ConsistencyQuery = Type.Object(
  {
    old_size: Size,
    new_size: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INDEX, description: 'Default: the latest checkpoint' })),
  },
  { additionalProperties: false },
);

export const ConsistencyProofSchema = Type.Object({
  old_size: Type.Integer(),
  new_size: Type.Integer(),
  path: Type.Array(Hash, { description: 'RFC 9162 consistency path' }),
});

const LeafContent = Type.Record(Type.String(), Type.Unknown(), {
  description: 'The canonical leaf JSON (RFC 8785): leaf_hash = SHA-256(0x00 ‖ JCS(content))',
});

export const EntrySchema = Type.Object({
  index: Type.Integer(),
  leaf_hash: Hash,
  kind: Type.String(),
  org_id: Type.Optional(Type.String({ description: "Only for callers in the leaf's organization" })),
  content: Type.Optional(
    Type.Union([LeafContent, Type.Null()], {
      description: "Only for callers in the leaf's organization with audit:read; null if the record is gone",
    }),
  ),
  inclusion_proof: Type.Union([
    Type.Object({ size: Type.Integer(), path: Type.Array(Hash) }),
    Type.Null({ description: 'Not yet covered by a checkpoint' }),
  ]),
});

export const ExportQuery = Type.Object(
  {
    from: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INDEX, description: 'First leaf index (default 0)' })),
    to: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_INDEX,
        description: 'End index, exclusive (default and maximum: the checkpoint size)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const IntegritySchema = Type.Object({
  ok: Type.Boolean(),
  size: Type.Integer(),
  checked_leaves: Type.Integer(),
  checked_checkpoints: Type.Integer(),
  first_bad_index: Type.Optional(Type.Integer()),
  problem: Type.Optional(Type.String()),
  detail: Type.Optional(Type.String()),
});
