// Every SQL statement of the ledger. Hashes leave here as Buffers (PGlite returns bytea as
// a plain Uint8Array, node-postgres as a Buffer; callers should not care which).
import type { Queryable } from '../../platform/db/index.js';
import { HASH_SIZE, type NodeId } from './merkle/index.js';

export type Bytes = Buffer | Uint8Array;

export function toBuffer(b: Bytes): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export interface HeadRow {
  size: number;
  frontier: Buffer[];
}

export interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  created_at: Date;
}

/** 32-byte hashes stored or sent end to end in one bytea (the head's frontier, batches). */
function splitHashes(b: Bytes | null): Buffer[] {
  if (b === null) return [];
  const buf = toBuffer(b);
  const out: Buffer[] = [];
  for (let i = 0; i + HASH_SIZE <= buf.length; i += HASH_SIZE) out.push(buf.subarray(i, i + HASH_SIZE));
  return out;
}

/**
 * A batch's hashes as one bytea parameter, split again in SQL with `hashAt`. An array of
 * bytea travels as text, every hash hex-encoded by the driver and decoded by PostgreSQL;
 * a batch has thousands of them.
 */
function packHashes(hashes: readonly Uint8Array[]): Buffer {
  for (const h of hashes) if (h.length !== HASH_SIZE) throw new RangeError('ledger hashes are 32 bytes');
  return Buffer.concat(hashes);
}
const hashAt = (packed: string, ordinality: string) =>
  `substring(${packed} FROM (${ordinality}::int - 1) * ${HASH_SIZE} + 1 FOR ${HASH_SIZE})`;

// --- sequencing -------------------------------------------------------------------------

/** Locks the single head row for the rest of the transaction (serializes appenders). */
export async function lockHead(tx: Queryable): Promise<HeadRow> {
  const { rows } = await tx.query<{ size: number; frontier: Bytes }>(
    'SELECT size, frontier FROM ledger_head WHERE id FOR UPDATE',
  );
  const row = rows[0];
  if (!row) throw new Error('ledger_head row is missing (migration 0004 not applied?)');
  return { size: row.size, frontier: splitHashes(row.frontier) };
}

export async function readHead(db: Queryable): Promise<HeadRow> {
  const { rows } = await db.query<{ size: number; frontier: Bytes }>('SELECT size, frontier FROM ledger_head WHERE id');
  const row = rows[0];
  if (!row) throw new Error('ledger_head row is missing (migration 0004 not applied?)');
  return { size: row.size, frontier: splitHashes(row.frontier) };
}

/**
 * Moves up to `limit` queued leaves into the log in one statement: takes the oldest queue
 * rows that have a hash, stored or in `computed` (skipping any another transaction holds),
 * deletes them and inserts them as leaves `start, start+1, …` in queue order. Returns the
 * new leaves in index order. `computed` carries the hashes the sequencer just made for
 * SQL-recorded rows, so they are not written into the queue rows that this very statement
 * deletes.
 *
 * Rows still without a hash wait for the next batch: a writer that drew its `seq` early can
 * commit an SQL-recorded row after this transaction hashed the pending ones, and under load
 * that happens in almost every batch (which once stalled the sequencer outright).
 *
 * Membership in `computed` is `IN (SELECT …)`, a hashed subplan built once per statement.
 * It was `= ANY($3)`: in the generic plan PostgreSQL settles on for a prepared statement,
 * that is a linear search of up to 5,000 seqs for every queue row scanned, and with a
 * backlog the plan filtered the whole queue that way: seconds per batch.
 */
export async function moveQueuedLeaves(
  tx: Queryable,
  start: number,
  limit: number,
  computed: { seqs: readonly number[]; hashes: readonly Buffer[] } = { seqs: [], hashes: [] },
): Promise<{ first: number; hashes: Buffer[] }> {
  // The new leaves come back as one row: their first index and their hashes end to end.
  const { rows } = await tx.query<{ first: number | null; count: number; hashes: Bytes | null }>(
    `WITH computed AS (
       SELECT c.seq, ${hashAt('$4::bytea', 'c.ord')} AS hash FROM unnest($3::bigint[]) WITH ORDINALITY AS c(seq, ord)),
     taken AS (
       DELETE FROM ledger_queue
        WHERE seq IN (SELECT seq FROM ledger_queue WHERE leaf_hash IS NOT NULL OR seq IN (SELECT seq FROM computed)
                       ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING seq, org_id, kind, ref_id, leaf_hash),
     appended AS (
       INSERT INTO ledger_leaves (idx, leaf_hash, org_id, kind, ref_id)
       SELECT $1::bigint + row_number() OVER (ORDER BY t.seq) - 1, coalesce(t.leaf_hash, c.hash), t.org_id, t.kind, t.ref_id
         FROM taken t LEFT JOIN computed c ON c.seq = t.seq
       RETURNING idx, leaf_hash)
     SELECT min(idx) AS first, count(*)::int AS count, string_agg(leaf_hash, ''::bytea ORDER BY idx) AS hashes
       FROM appended`,
    [start, limit, computed.seqs, packHashes(computed.hashes)],
  );
  const row = rows[0]!;
  // A stored hash of another length would shift every hash after it.
  if ((row.hashes?.length ?? 0) !== row.count * HASH_SIZE)
    throw new Error('ledger sequencer: a queued leaf hash is not 32 bytes');
  return { first: row.first ?? start, hashes: splitHashes(row.hashes) };
}

export async function insertNodes(
  tx: Queryable,
  nodes: readonly { level: number; index: number; hash: Buffer }[],
): Promise<void> {
  if (nodes.length === 0) return;
  await tx.query(
    `INSERT INTO ledger_nodes (level, idx, hash)
     SELECT n.level, n.idx, ${hashAt('$3::bytea', 'n.ord')} FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS n(level, idx, ord)`,
    [nodes.map((n) => n.level), nodes.map((n) => n.index), packHashes(nodes.map((n) => n.hash))],
  );
}

export async function updateHead(tx: Queryable, size: number, frontier: readonly Buffer[]): Promise<void> {
  await tx.query('UPDATE ledger_head SET size = $1, frontier = $2, updated_at = now() WHERE id', [size, Buffer.concat(frontier)]);
}

export async function hasQueuedLeaves(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ queued: boolean }>('SELECT EXISTS (SELECT 1 FROM ledger_queue) AS queued');
  return rows[0]?.queued === true;
}

// --- checkpoints ------------------------------------------------------------------------

type RawCheckpoint = Omit<CheckpointRow, 'root'> & { root: Bytes };
const cp = (r: RawCheckpoint): CheckpointRow => ({ ...r, root: toBuffer(r.root) });

export async function latestCheckpoint(db: Queryable): Promise<CheckpointRow | undefined> {
  const { rows } = await db.query<RawCheckpoint>(
    'SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1',
  );
  return rows[0] && cp(rows[0]);
}

export async function checkpointAtSize(db: Queryable, size: number): Promise<CheckpointRow | undefined> {
  const { rows } = await db.query<RawCheckpoint>('SELECT size, root, note, created_at FROM ledger_checkpoints WHERE size = $1', [
    size,
  ]);
  return rows[0] && cp(rows[0]);
}

/** Checkpoints with size > `after`, oldest first, for walks that must not load them all. */
export async function checkpointsAfter(db: Queryable, after: number, limit: number): Promise<CheckpointRow[]> {
  const { rows } = await db.query<RawCheckpoint>(
    'SELECT size, root, note, created_at FROM ledger_checkpoints WHERE size > $1 ORDER BY size LIMIT $2',
    [after, limit],
  );
  return rows.map(cp);
}

/** Idempotent: a checkpoint at a size is deterministic (Ed25519), so a second cut is a no-op. */
export async function insertCheckpoint(
  db: Queryable,
  c: { size: number; root: Buffer; note: string },
): Promise<CheckpointRow | undefined> {
  const { rows } = await db.query<RawCheckpoint>(
    `INSERT INTO ledger_checkpoints (size, root, note) VALUES ($1, $2, $3)
     ON CONFLICT (size) DO NOTHING
     RETURNING size, root, note, created_at`,
    [c.size, c.root, c.note],
  );
  return rows[0] && cp(rows[0]);
}

// --- proofs and reads -------------------------------------------------------------------

/** The stored hashes of the given perfect nodes, keyed `level:index`, in one round trip. */
export async function fetchNodes(db: Queryable, ids: readonly NodeId[]): Promise<Map<string, Buffer>> {
  const map = new Map<string, Buffer>();
  if (ids.length === 0) return map;
  const { rows } = await db.query<{ level: number; idx: number; hash: Bytes }>(
    `SELECT level, idx, hash FROM ledger_nodes
      WHERE (level, idx) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))`,
    [ids.map((id) => id.level), ids.map((id) => id.index)],
  );
  for (const r of rows) map.set(`${r.level}:${r.idx}`, toBuffer(r.hash));
  return map;
}

/** The leaf hash at `idx` plus the given nodes, in one round trip (inclusion proofs). */
export async function fetchLeafAndNodes(
  db: Queryable,
  idx: number,
  ids: readonly NodeId[],
): Promise<{ leafHash: Buffer | undefined; nodes: Map<string, Buffer> }> {
  const { rows } = await db.query<{ level: number; idx: number; hash: Bytes }>(
    `SELECT -1 AS level, idx, leaf_hash AS hash FROM ledger_leaves WHERE idx = $3
     UNION ALL
     SELECT level, idx, hash FROM ledger_nodes
      WHERE (level, idx) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))`,
    [ids.map((id) => id.level), ids.map((id) => id.index), idx],
  );
  const nodes = new Map<string, Buffer>();
  let leafHash: Buffer | undefined;
  for (const r of rows) {
    if (r.level === -1) leafHash = toBuffer(r.hash);
    else nodes.set(`${r.level}:${r.idx}`, toBuffer(r.hash));
  }
  return { leafHash, nodes };
}

/** Stored nodes with level = levels[i] and lo[i] <= idx <= hi[i] (integrity check pages). */
export async function nodesInRanges(
  db: Queryable,
  ranges: readonly { level: number; lo: number; hi: number }[],
): Promise<Map<string, Buffer>> {
  const map = new Map<string, Buffer>();
  if (ranges.length === 0) return map;
  const { rows } = await db.query<{ level: number; idx: number; hash: Bytes }>(
    `SELECT n.level, n.idx, n.hash
       FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi)
       JOIN ledger_nodes n ON n.level = r.level AND n.idx BETWEEN r.lo AND r.hi`,
    [ranges.map((r) => r.level), ranges.map((r) => r.lo), ranges.map((r) => r.hi)],
  );
  for (const r of rows) map.set(`${r.level}:${r.idx}`, toBuffer(r.hash));
  return map;
}

export interface IntegritySnapshot {
  size: number;
  frontier: Buffer[];
  /** The smallest leaf index at or beyond the head, if any: a row nobody appended. */
  extraIdx: number | null;
  maxCheckpointSize: number | null;
}

/**
 * The head with what lies beyond it, read in one statement (one snapshot), so a leaf or
 * checkpoint appended while a check runs is not mistaken for an inserted one.
 */
export async function integritySnapshot(db: Queryable): Promise<IntegritySnapshot> {
  const { rows } = await db.query<{ size: number; frontier: Bytes; extra_idx: number | null; max_cp: number | null }>(
    `SELECT h.size, h.frontier,
            (SELECT min(idx) FROM ledger_leaves WHERE idx >= h.size) AS extra_idx,
            (SELECT max(size) FROM ledger_checkpoints) AS max_cp
       FROM ledger_head h WHERE h.id`,
  );
  const row = rows[0];
  if (!row) throw new Error('ledger_head row is missing (migration 0004 not applied?)');
  return { size: row.size, frontier: splitHashes(row.frontier), extraIdx: row.extra_idx, maxCheckpointSize: row.max_cp };
}
