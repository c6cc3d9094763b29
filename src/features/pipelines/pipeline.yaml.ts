// Reading a pipeline's YAML so that every later complaint can say where: the document is
// kept beside its plain value, and `locate` finds the line and column of the node (or of
// the key, for a field that should not be there) at a path such as ['steps', 2, 'needs', 0].
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, Scalar, type Document, type Node } from 'yaml';

export interface PipelineError {
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  /** Where in the pipeline, e.g. `steps[2].needs[0]`; empty for the file itself. */
  path: string;
  message: string;
}

export type Path = readonly (string | number)[];

export const MAX_SOURCE_BYTES = 1024 * 1024;
/** Anchors and aliases are handy for shared settings; more than this is an expansion attack. */
export const MAX_ALIAS_COUNT = 100;
/** A file with more problems than this is not worth listing further. */
export const MAX_ERRORS = 50;

export function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

export class YamlSource {
  constructor(
    readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): { line: number; column: number } {
    const { line, col } = this.lines.linePos(offset);
    return { line: Math.max(line, 1), column: Math.max(col, 1) };
  }

  /**
   * The deepest node along `path` (aliases followed), and the key node of its last
   * step when the path ends in a mapping's field.
   */
  nodeAt(path: Path): { node: Node | null; key: Node | null } {
    let node: Node | null = this.doc.contents;
    let key: Node | null = null;
    for (const part of path) {
      if (node && isAlias(node)) node = (node.resolve(this.doc) as Node | undefined) ?? node;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(part));
        if (!pair) return { node, key: null };
        key = pair.key as Node;
        node = (pair.value as Node | null) ?? key;
      } else if (isSeq(node) && typeof part === 'number' && node.items[part]) {
        key = null;
        node = node.items[part] as Node;
      } else {
        return { node, key: null };
      }
    }
    return { node, key };
  }

  /** Line and column of the node at `path` (or of its key, to point at a field's name). */
  locate(path: Path, opts: { key?: boolean; offset?: number } = {}): { line: number; column: number } {
    const { node, key } = this.nodeAt(path);
    const target = opts.key && key ? key : node;
    const start = target?.range?.[0] ?? 0;
    return this.position(start + (opts.offset ?? 0));
  }

  /**
   * Where character `index` of the string at `path` is, when the scalar is written on one
   * line (plain or quoted, escapes aside); else the scalar's start.
   */
  locateInString(path: Path, index: number): { line: number; column: number } {
    const { node } = this.nodeAt(path);
    if (!isScalar(node) || !node.range) return this.locate(path);
    const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
    if (node.type !== Scalar.PLAIN && !quoted) return this.locate(path);
    const at = this.position(node.range[0] + (quoted ? 1 : 0) + index);
    return at.line === this.position(node.range[0]).line ? at : this.locate(path);
  }

  error(path: Path, message: string, opts: { key?: boolean } = {}): PipelineError {
    return { ...this.locate(path, opts), path: formatPath(path), message };
  }
}

export type LoadResult = { ok: true; source: YamlSource; value: unknown } | { ok: false; errors: PipelineError[] };

/** YAML 1.2 text → its document and plain value; never throws. */
export function loadYaml(text: string): LoadResult {
  const at = (line: number, column: number, message: string): LoadResult => ({
    ok: false,
    errors: [{ line, column, path: '', message }],
  });
  if (Buffer.byteLength(text, 'utf8') > MAX_SOURCE_BYTES) {
    return at(
      1,
      1,
      `The pipeline is larger than ${MAX_SOURCE_BYTES / 1024} KiB; split it, or generate steps with a dynamic upload.`,
    );
  }
  const nul = text.indexOf('\0');
  const lines = new LineCounter();
  try {
    const doc = parseDocument(text, {
      lineCounter: lines,
      prettyErrors: false,
      uniqueKeys: true,
      merge: true,
    });
    const source = new YamlSource(doc, lines);
    if (nul >= 0) {
      const { line, column } = source.position(nul);
      return at(line, column, 'The pipeline contains a NUL character.');
    }
    // Warnings (an unknown !tag, say) are refused too: they mean the value is not what was written.
    const problems = [...doc.errors, ...doc.warnings].slice(0, MAX_ERRORS).map((e) => ({
      ...source.position(e.pos[0]),
      path: '',
      message: yamlMessage(e.code, e.message, text.slice(e.pos[0], e.pos[0] + 200)),
    }));
    if (problems.length > 0) return { ok: false, errors: problems };
    if (doc.contents === null) return at(1, 1, 'The pipeline is empty: it needs `steps:`.');
    return { ok: true, source, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      return at(1, 1, `Too many alias expansions (more than ${MAX_ALIAS_COUNT}): refused as a resource exhaustion attack.`);
    }
    // A parser failure on hostile input (nesting deep enough to exhaust the stack) is the file's fault.
    return at(1, 1, `The pipeline could not be read as YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function yamlMessage(code: string, message: string, excerpt: string): string {
  // The library appends " at line L, column C" in some messages; we report the position ourselves.
  const plain = message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
  switch (code) {
    case 'DUPLICATE_KEY':
      return `The key "${/^(?:"[^"\n]*"|'[^'\n]*'|[^:\n]*?)(?=\s*:)/.exec(excerpt)?.[0] ?? '?'}" appears twice in the same mapping.`;
    case 'MULTIPLE_DOCS':
      return 'A pipeline is one YAML document; remove the `---` separator.';
    default:
      return `YAML: ${plain}`;
  }
}
