// The few ledger endpoints the verifier calls, over plain fetch: it runs on an auditor's
// machine and must depend on nothing but the HTTP API (never on the server's database).
import { ndjsonBlocks } from './lines.js';

export class VerifyError extends Error {
  constructor(
    readonly problem: string,
    message: string,
    readonly index?: number,
  ) {
    super(message);
    this.name = 'VerifyError';
  }
}

export interface CheckpointResponse {
  size: number;
  root: string;
  origin: string;
  note: string;
}

export interface LedgerClientOptions {
  url: string;
  token?: string;
  fetch?: typeof fetch;
}

export class LedgerClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: LedgerClientOptions) {
    this.base = `${opts.url.replace(/\/+$/, '')}/api/v1/ledger`;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  private async request(path: string): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base}${path}`, { headers });
    } catch (error) {
      throw new VerifyError('unreachable', `cannot reach ${this.base}${path}: ${(error as Error).message}`);
    }
    if (!res.ok) {
      const body = await res.text().catch(() => '');
      let detail = body.slice(0, 300);
      try {
        const problem = JSON.parse(body) as { detail?: string; code?: string };
        detail = `${problem.code ?? ''}: ${problem.detail ?? ''}`;
      } catch {
        // not a problem document; show the start of the body
      }
      throw new VerifyError('http_error', `GET ${path} answered ${res.status} ${detail}`.trim());
    }
    return res;
  }

  async getJson<T>(path: string): Promise<T> {
    return (await (await this.request(path)).json()) as T;
  }

  checkpoint(): Promise<CheckpointResponse> {
    return this.getJson('/checkpoint');
  }

  publicKey(): Promise<{ verifier_key: string }> {
    return this.getJson('/public-key');
  }

  inclusionProof(index: number, size: number): Promise<{ leaf_hash: string; path: string[] }> {
    return this.getJson(`/proofs/inclusion?index=${index}&size=${size}`);
  }

  consistencyProof(oldSize: number, newSize: number): Promise<{ path: string[] }> {
    return this.getJson(`/proofs/consistency?old_size=${oldSize}&new_size=${newSize}`);
  }

  /** The export as blocks of whole lines (see lines.ts). */
  async exportBlocks(): Promise<AsyncGenerator<Buffer>> {
    const res = await this.request('/export');
    if (!res.body) throw new VerifyError('http_error', 'the export has no body');
    return ndjsonBlocks(res.body);
  }
}

/** Decodes a base64 hash from the server or a file, refusing anything but 32 bytes. */
export function decodeHash(value: unknown, what: string, index?: number): Buffer {
  const buf = typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
  if (buf.length !== 32 || buf.toString('base64') !== value) {
    throw new VerifyError('malformed', `${what} is not a base64 SHA-256 hash`, index);
  }
  return buf;
}

export function decodeHashes(values: unknown, what: string): Buffer[] {
  if (!Array.isArray(values)) throw new VerifyError('malformed', `${what} is not a list of hashes`);
  return values.map((v) => decodeHash(v, what));
}
