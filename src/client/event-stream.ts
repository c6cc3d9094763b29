// A client for Cairn's WebSocket event stream (GET /api/v1/ws): subscribes to topics,
// remembers the last event id of each, and on a dropped connection reconnects with backoff
// and resumes every topic from there, so the caller sees each event once. When the server
// cannot resume a topic it says `resync` and the caller refetches by REST. Protocol:
// src/features/events/README.md. Talks to the API only (no server imports).
import WebSocket from 'ws';
import type { ApiTarget } from './api-request.js';
import { createBackoff, sleep, type BackoffPolicy } from './backoff.js';

export interface StreamMessage {
  id: string | null;
  type: string;
  topic: string | null;
  at: string;
  data: Record<string, unknown>;
}

/** The stream cannot go on: bad credentials, credentials revoked, or a refusal that retrying will not fix. */
export class StreamClosedError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'StreamClosedError';
  }
}

export interface EventStreamOptions {
  topics: readonly string[];
  /** Where topics resume from (ids saved earlier); otherwise they start now. */
  since?: Readonly<Record<string, string>>;
  /** Domain events (dotted types), in order, each once. */
  onEvent(event: StreamMessage): void;
  /** The topic may have missed events (`reason`): refetch its state by REST; events continue. */
  onResync?(topic: string, reason: string): void;
  /** The server refused a topic (`topic_not_found`, `forbidden`, …); it is not retried. */
  onRefused?(topic: string, code: string, message: string): void;
  /** The topic is live (after each connect). */
  onSubscribed?(topic: string): void;
  onReconnecting?(reason: string, delayMs: number): void;
  signal?: AbortSignal;
  reconnect?: BackoffPolicy;
}

export interface EventStream {
  /** Resolves when closed by the caller (or the signal); rejects with StreamClosedError when it cannot go on. */
  readonly done: Promise<void>;
  close(): void;
}

const SUBPROTOCOL = 'cairn.v1';
/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSES: Record<number, string> = { 4001: 'credentials_revoked', 1008: 'policy_violation' };

export function streamUrl(baseUrl: string): string {
  const url = new URL('/api/v1/ws', baseUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export function openEventStream(target: ApiTarget, options: EventStreamOptions): EventStream {
  const positions = new Map<string, string>(Object.entries(options.since ?? {}));
  const topics = new Set(options.topics);
  const backoff = createBackoff(options.reconnect ?? { baseMs: 500, maxMs: 15_000 });
  const stopper = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stopper.signal]) : stopper.signal;

  /** One connection: resolves with why it ended (to reconnect), or rejects when retrying cannot help. */
  function connect(): Promise<string> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = target.token ? { authorization: `Bearer ${target.token}` } : {};
      if (target.userAgent) headers['user-agent'] = target.userAgent;
      const ws = new WebSocket(streamUrl(target.baseUrl), [SUBPROTOCOL], { headers, perMessageDeflate: false });
      let watchdog: NodeJS.Timeout | undefined;
      let silenceMs = 75_000;
      // A server that stops sending (pings included) for 2.5 heartbeats is gone, whatever TCP says.
      const feed = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ws.terminate(), silenceMs);
      };
      const onAbort = () => ws.close(1000);
      signal.addEventListener('abort', onAbort, { once: true });
      ws.on('open', () => {
        backoff.reset();
        feed();
        for (const topic of topics) {
          const since = positions.get(topic);
          ws.send(JSON.stringify({ type: 'subscribe', topic, ...(since ? { since } : {}) }));
        }
      });
      ws.on('ping', feed);
      ws.on('message', (raw: Buffer) => {
        feed();
        const message = JSON.parse(raw.toString('utf8')) as StreamMessage;
        handle(message, (heartbeat) => (silenceMs = heartbeat * 2500));
        if (topics.size === 0) ws.close(1000); // every topic was refused: nothing left to follow
      });
      ws.on('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          const problem = (() => {
            try {
              return JSON.parse(body) as { code?: string; detail?: string };
            } catch {
              return {};
            }
          })();
          const status = response.statusCode ?? 0;
          const detail = `${status} ${problem.code ?? ''}: ${problem.detail ?? response.statusMessage ?? ''}`;
          // 429 and 5xx pass; anything else (401, 403, 400) will not get better by retrying.
          if (status === 429 || status >= 500) resolve(`refused: ${detail}`);
          else reject(new StreamClosedError(`The server refused the stream: ${detail}`, problem.code ?? `http_${status}`));
          ws.terminate();
        });
      });
      ws.on('error', () => {}); // 'close' follows with the reason
      ws.on('close', (code, reason) => {
        clearTimeout(watchdog);
        signal.removeEventListener('abort', onAbort);
        const fatal = FATAL_CLOSES[code];
        if (fatal && !signal.aborted) reject(new StreamClosedError(`The server closed the stream: ${reason.toString()}`, fatal));
        else resolve(`closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`);
      });
    });
  }

  function handle(message: StreamMessage, setHeartbeat: (seconds: number) => void): void {
    const topic = message.topic;
    if (message.type === 'welcome' && typeof message.data.heartbeat_seconds === 'number') {
      setHeartbeat(message.data.heartbeat_seconds);
    } else if (topic && (message.type === 'subscribed' || message.type === 'resync')) {
      if (typeof message.data.position === 'string') positions.set(topic, message.data.position);
      if (message.type === 'subscribed') options.onSubscribed?.(topic);
      else options.onResync?.(topic, String(message.data.reason));
    } else if (message.type === 'error' && topic) {
      topics.delete(topic); // a refusal is an answer; asking again would get the same
      options.onRefused?.(topic, String(message.data.code), String(message.data.message));
    } else if (message.type.includes('.') && topic) {
      if (message.id !== null) positions.set(topic, message.id);
      options.onEvent(message);
    }
  }

  const done = (async () => {
    while (!signal.aborted && topics.size > 0) {
      const reason = await connect();
      if (signal.aborted || topics.size === 0) break;
      const delay = backoff.next();
      options.onReconnecting?.(reason, delay);
      await sleep(delay, signal);
    }
  })();
  return { done, close: () => stopper.abort() };
}
