-- The ledger: an append-only RFC 9162 Merkle log of audit leaves with signed checkpoints.
-- See src/features/ledger/README.md. Cairn only ever INSERTs into these tables (and
-- updates the one ledger_head row); anything else is tampering, which checkIntegrity finds.

-- One row per sequenced leaf. idx is the leaf's position in the log, fixed once assigned.
CREATE TABLE ledger_leaves (
  idx bigint PRIMARY KEY CHECK (idx >= 0),
  leaf_hash bytea NOT NULL,
  org_id uuid NOT NULL,
  kind text NOT NULL,
  ref_id uuid NOT NULL,
  appended_at timestamptz NOT NULL DEFAULT now()
);
-- "Which leaf records this audit event?" (evidence and audit views show the ledger index).
CREATE INDEX ledger_leaves_ref_idx ON ledger_leaves (ref_id);

-- Every complete perfect subtree: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level); level 0 repeats the leaf hashes so a proof is one
-- lookup in one table. A perfect node never changes once complete, so every historical
-- tree size stays provable from the same rows.
CREATE TABLE ledger_nodes (
  level integer NOT NULL CHECK (level >= 0 AND level < 64),
  idx bigint NOT NULL CHECK (idx >= 0),
  hash bytea NOT NULL,
  PRIMARY KEY (level, idx)
);

-- Every signed tree head ever cut, so proofs can be asked against any checkpointed size.
-- note is the full C2SP signed checkpoint text; root repeats its root hash for queries.
CREATE TABLE ledger_checkpoints (
  size bigint PRIMARY KEY CHECK (size >= 0),
  root bytea NOT NULL,
  note text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The tree's current size and frontier (the perfect-subtree roots of [0, size), largest
-- first, concatenated 32 bytes each), so an append reads one row instead of the tree.
-- Exactly one row; the sequencer locks it, which also serializes two would-be leaders.
CREATE TABLE ledger_head (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  size bigint NOT NULL CHECK (size >= 0),
  frontier bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_head (id, size, frontier) VALUES (true, 0, ''::bytea);
