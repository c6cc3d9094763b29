// NDJSON over byte chunks (a file stream or a fetch body). Lines stay bytes: the verifier
// hashes content bytes as they are and decodes text only when it has to. Splitting on
// the 0x0A byte is safe for UTF-8, whose multi-byte sequences never contain it.

/** Blocks of whole lines (a line never spans two blocks), views into the input where possible. */
export async function* ndjsonBlocks(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let tail: Buffer | null = null;
  for await (const chunk of chunks) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const buf: Buffer = tail ? Buffer.concat([tail, bytes]) : bytes;
    const end = buf.lastIndexOf(10) + 1;
    if (end > 0) yield buf.subarray(0, end);
    // Copied: the stream may reuse the chunk's memory.
    tail = end < buf.length ? Buffer.from(buf.subarray(end)) : null;
  }
  if (tail && tail.length > 0) yield tail;
}

/** Calls `fn` with the [start, end) of every non-empty line of `block`. */
export function forEachLine(block: Buffer, fn: (start: number, end: number) => void): void {
  let start = 0;
  while (start < block.length) {
    let nl = block.indexOf(10, start);
    if (nl === -1) nl = block.length;
    if (nl > start) fn(start, nl);
    start = nl + 1;
  }
}

export async function* ndjsonLines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const block of ndjsonBlocks(chunks)) {
    const lines: Buffer[] = [];
    forEachLine(block, (s, e) => lines.push(block.subarray(s, e)));
    yield* lines;
  }
}
