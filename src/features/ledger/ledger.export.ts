// The NDJSON export: a header line naming the signed checkpoint the export is consistent
// with, then one line per leaf in index order up to that checkpoint's size. Read in
// keyset pages, so memory stays flat whatever the log's size. Content is shown only for
// the caller's own organization: other tenants' leaves are hashes and positions only.
import type { Queryable } from '../../platform/db/index.js';
import { BadRequestError } from '../../platform/errors.js';
import { checkpointView } from './ledger.checkpoints.js';
import { leafContentOfAuditRow } from './ledger.content.js';
import { requireLatestCheckpoint } from './ledger.proofs.js';
import { leafPage, type LeafRow } from './ledger.leaves.queries.js';
import { canonicalJson } from './merkle/jcs.js';

export const EXPORT_PAGE = 5_000;

export interface ExportHeader {
  checkpoint: string;
  origin: string;
  size: number;
  root: string;
  from: number;
  to: number;
}

/**
 * One export line: `{"index":…,"leaf_hash":"…","kind":"…","content":…}`. `content` is
 * present for the caller's own leaves, written in its canonical (RFC 8785) form, so a
 * verifier can hash those bytes as they are; it is `null` when such a leaf's record is
 * gone (a verifier must flag it), and absent for other organizations' leaves.
 */
export function exportLine(row: LeafRow, orgId: string): string {
  const head = `{"index":${row.idx},"leaf_hash":"${row.leaf_hash.toString('base64')}","kind":${JSON.stringify(row.kind)}`;
  if (row.org_id !== orgId) return `${head}}`;
  if (!row.audit) return `${head},"content":null}`;
  return `${head},"content":${canonicalJson(leafContentOfAuditRow(row.audit))}}`;
}

export interface ExportRange {
  from?: number;
  to?: number;
}

/** Resolves the checkpoint and range up front, so a bad request fails before streaming. */
export async function prepareExport(db: Queryable, range: ExportRange): Promise<ExportHeader> {
  const cp = await requireLatestCheckpoint(db);
  const from = range.from ?? 0;
  const to = Math.min(range.to ?? cp.size, cp.size);
  if (from > to) {
    throw new BadRequestError(`from ${from} is beyond to ${to} (the export ends at checkpoint size ${cp.size}).`, 'bad_range', {
      size: cp.size,
    });
  }
  const view = checkpointView(cp);
  return { checkpoint: view.note, origin: view.origin, size: cp.size, root: view.root, from, to };
}

/** The export as text chunks (one per page), for a streamed response. */
export async function* exportChunks(db: Queryable, orgId: string, header: ExportHeader): AsyncGenerator<string> {
  yield `${JSON.stringify(header)}\n`;
  let next = header.from;
  while (next < header.to) {
    const rows = await leafPage(db, { from: next, to: header.to, limit: EXPORT_PAGE, contentOrgId: orgId, allContent: false });
    if (rows.length === 0) return; // missing leaves: the verifier sees the short count
    let chunk = '';
    for (const row of rows) chunk += `${exportLine(row, orgId)}\n`;
    yield chunk;
    next = rows[rows.length - 1]!.idx + 1;
  }
}
