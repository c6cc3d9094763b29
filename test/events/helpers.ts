// Stream clients for tests: a raw WebSocket that records every message and lets a test
// await the one it expects, and an SSE reader. Deliberately not src/client/ (which has its
// own tests): the server's tests speak the wire protocol directly.
import http from 'node:http';
import WebSocket from 'ws';
import type { TestApp } from '../helpers/app.js';

export interface Message {
  id: string | null;
  type: string;
  topic: string | null;
  at: string;
  data: Record<string, unknown>;
}

/** Starts the test app on a free port (idempotent); returns its http:// base URL. */
export async function listen(t: TestApp): Promise<string> {
  const address = t.app.server.address();
  if (address && typeof address === 'object') return `http://127.0.0.1:${address.port}`;
  return t.app.listen({ host: '127.0.0.1', port: 0 });
}

export const wsUrl = (base: string, query = '') => `${base.replace(/^http/, 'ws')}/api/v1/ws${query}`;

export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(`upgrade refused: ${status} ${JSON.stringify(body)}`);
  }
}

export class TestSocket {
  readonly messages: Message[] = [];
  private waiters = new Set<() => void>();
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.messages.push(JSON.parse(data.toString('utf8')) as Message);
      this.waiters.forEach((w) => w());
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a socket; rejects with Refused (status and problem body) when the upgrade is refused. */
  static open(url: string, opts: { headers?: Record<string, string>; protocols?: string[]; autoPong?: boolean } = {}) {
    return new Promise<TestSocket>((resolve, reject) => {
      const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers, autoPong: opts.autoPong ?? true });
      const socket = new TestSocket(ws);
      ws.once('open', () => resolve(socket));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => reject(new Refused(res.statusCode ?? 0, JSON.parse(body || '{}') as Record<string, unknown>)));
      });
      ws.once('error', (error) => reject(error));
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The first message (received already or to come) matching `match`, after `from`. */
  next(match: (m: Message) => boolean, opts: { from?: number; timeoutMs?: number } = {}): Promise<Message> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.messages.slice(opts.from ?? 0).find(match);
        if (!found) return false;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching message; received: ${JSON.stringify(this.messages.map((m) => `${m.type} ${m.topic}`))}`));
      }, opts.timeoutMs ?? 10_000);
      this.waiters.add(check);
      check();
    });
  }

  async subscribe(topic: string, since?: string): Promise<Message> {
    const from = this.messages.length;
    this.send({ type: 'subscribe', topic, ...(since ? { since } : {}) });
    return this.next((m) => m.topic === topic && (m.type === 'subscribed' || m.type === 'error'), { from });
  }

  /** Domain events (dotted types) received so far, optionally on one topic. */
  events(topic?: string): Message[] {
    return this.messages.filter((m) => m.type.includes('.') && (topic === undefined || m.topic === topic));
  }

  close(): void {
    this.ws.close();
  }
}

export interface SseEvent {
  id: string | undefined;
  message: Message;
}

/** Reads an SSE stream; resolves once the response headers arrive. */
export function openSse(url: string, headers: Record<string, string> = {}) {
  return new Promise<{
    status: number;
    events: SseEvent[];
    body: () => string;
    next: (match: (e: SseEvent) => boolean) => Promise<SseEvent>;
    close: () => void;
  }>((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let buffer = '';
      let raw = '';
      const events: SseEvent[] = [];
      const waiters = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (data) events.push({ id, message: JSON.parse(data) as Message });
        }
        waiters.forEach((w) => w());
      });
      resolve({
        status: res.statusCode ?? 0,
        events,
        body: () => raw,
        close: () => req.destroy(),
        next: (match) =>
          new Promise((done, fail) => {
            const check = () => {
              const found = events.find(match);
              if (!found) return;
              waiters.delete(check);
              clearTimeout(timer);
              done(found);
            };
            const timer = setTimeout(() => fail(new Error(`no matching SSE event in ${raw}`)), 10_000);
            waiters.add(check);
            check();
          }),
      });
    });
    req.on('error', reject);
  });
}
