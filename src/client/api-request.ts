// One HTTP call to the Cairn API with Node's fetch (undici): a timeout on every call,
// problem+json errors turned into ApiError, and a single rule for "worth retrying".

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    /** From Retry-After (429, 503), when the server sent one. */
    readonly retryAfterMs: number | undefined,
    readonly body: Record<string, unknown>,
  ) {
    super(`${status} ${code}: ${detail}`);
    this.name = 'ApiError';
  }
}

/** The server could not be reached or did not answer in time. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetworkError';
  }
}

/** Transient: the same request may succeed later (server away, overloaded or restarting). */
export function isRetryable(error: unknown): boolean {
  if (error instanceof NetworkError) return true;
  if (error instanceof ApiError) return error.status >= 500 || error.status === 429 || error.status === 408;
  return false;
}

export function retryAfterOf(error: unknown): number | undefined {
  return error instanceof ApiError ? error.retryAfterMs : undefined;
}

export interface ApiTarget {
  /** e.g. http://127.0.0.1:3000 (no trailing /api/v1) */
  baseUrl: string;
  token?: string;
  userAgent?: string;
}

export interface ApiCall {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  json?: unknown;
  /** A raw body (streamed upload); set its content type in `headers`. */
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ApiAnswer<T> {
  status: number;
  /** undefined for 204 and empty bodies */
  body: T | undefined;
  headers: Headers;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function describeFailure(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

export async function apiRequest<T>(target: ApiTarget, call: ApiCall): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...call.headers };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (target.userAgent) headers['user-agent'] = target.userAgent;
  let body = call.body;
  if (call.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(call.json);
  }
  const timeout = AbortSignal.timeout(call.timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  let response: Response;
  let text: string;
  try {
    // Joined as text: a server behind a path prefix (https://host/cairn) keeps its prefix.
    response = await fetch(`${target.baseUrl.replace(/\/+$/, '')}${call.path}`, {
      method: call.method,
      headers,
      body,
      signal,
      // Required by undici for streamed request bodies.
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    });
    text = await response.text();
  } catch (error) {
    // A caller's own abort is not a network problem: let it through as is.
    if (call.signal?.aborted) throw error;
    throw new NetworkError(`${call.method} ${call.path}: ${describeFailure(error)}`, { cause: error });
  }
  let parsed: unknown;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 500) };
    }
  }
  if (response.status >= 400) {
    const problem = (parsed ?? {}) as Record<string, unknown>;
    throw new ApiError(
      response.status,
      typeof problem.code === 'string' ? problem.code : `http_${response.status}`,
      typeof problem.detail === 'string'
        ? problem.detail
        : typeof problem.title === 'string'
          ? problem.title
          : response.statusText,
      parseRetryAfter(response.headers.get('retry-after')),
      problem,
    );
  }
  return { status: response.status, body: parsed as T | undefined, headers: response.headers };
}
