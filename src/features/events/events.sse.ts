// Server-Sent Events: the same subscriptions as the WebSocket, for clients that cannot
// use one. Each message is `id: <cursor>` + `data: <envelope>`; the cursor holds how far
// the stream is in the organization's history and in the ledger (`<org id>~<ledger size>`),
// so the Last-Event-ID an EventSource sends back when it reconnects resumes every topic.
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthContext } from '../../platform/auth.js';
import { compareEventIds } from '../../platform/bus.js';
import { AppError, BadRequestError } from '../../platform/errors.js';
import { authenticateStream } from './events.auth.js';
import { isLocalId, type Payload, type StreamClient, type Subscription } from './events.delivery.js';
import { LEDGER_CLIENT_TOPIC } from './events.ledger.js';
import { CLOSE, type ErrorCode } from './events.protocol.js';
import { topicsFromQuery, type UpgradeContext } from './events.upgrade.js';

const CHECK_STATUS: Record<ErrorCode, number> = {
  bad_message: 400,
  unknown_topic: 400,
  too_many_topics: 400,
  not_subscribed: 400,
  forbidden: 403,
  topic_not_found: 404,
  unavailable: 503,
};

/** `<org id>~<ledger size>`, either part possibly empty. */
export function parseCursor(value: string | undefined): { org?: string; ledger?: string } {
  const [org, ledger] = (value ?? '').split('~');
  return { ...(org ? { org } : {}), ...(ledger ? { ledger } : {}) };
}

class SseClient implements StreamClient {
  readonly transport = 'sse' as const;
  readonly subscriptions = new Map<string, Subscription>();
  open = true;

  constructor(
    private readonly raw: ServerResponse,
    readonly auth: AuthContext,
    private readonly ctx: UpgradeContext,
  ) {}

  sendEvent(payload: Payload): void {
    this.write(`id: ${this.cursor()}\ndata: ${payload.json}\n\n`);
  }

  sendControl(message: string): void {
    const cursor = this.cursor();
    this.write(`${cursor === '~' ? '' : `id: ${cursor}\n`}data: ${message}\n\n`);
  }

  close(code: number): void {
    if (!this.open) return;
    this.open = false;
    // A slow reader's buffer is dropped at once; others get the end of the stream.
    if (code === CLOSE.slowConsumer) this.raw.destroy();
    else this.raw.end();
  }

  heartbeat(): void {
    this.write(': ping\n\n');
  }

  bufferedBytes(): number {
    return this.raw.writableLength;
  }

  /** The furthest organization history id and ledger size any subscription has reached. */
  private cursor(): string {
    let org: string | null = null;
    let ledger = '';
    for (const s of this.subscriptions.values()) {
      if (s.position === null || isLocalId(s.position)) continue;
      if (s.topic === LEDGER_CLIENT_TOPIC) ledger = s.position;
      else if (org === null || compareEventIds(s.position, org) > 0) org = s.position;
    }
    return `${org ?? ''}~${ledger}`;
  }

  private write(text: string): void {
    if (!this.open) return;
    if (this.raw.writableLength > this.ctx.config.eventsMaxBufferBytes) {
      this.ctx.hub.counters.slowConsumers++;
      return this.close(CLOSE.slowConsumer);
    }
    this.raw.write(text);
  }
}

export async function streamEvents(
  ctx: UpgradeContext,
  request: FastifyRequest,
  reply: FastifyReply,
  query: { topics: string; ticket?: string },
): Promise<void> {
  const topics = topicsFromQuery(query);
  if (topics.length === 0) throw new BadRequestError('Name at least one topic: ?topics=org,project:<id>.', 'no_topics');
  if (topics.length > ctx.config.eventsMaxTopics) {
    throw new BadRequestError(`At most ${ctx.config.eventsMaxTopics} topics per stream.`, 'too_many_topics');
  }
  if (request.authError) throw request.authError;
  const ip = request.ip;
  const meta = { requestId: request.id, clientIp: ip };
  const auth = request.authContext ?? (await authenticateStream(ctx, { ticket: query.ticket }, meta));
  const refusal = ctx.limits.refusal(ip, auth);
  if (refusal) throw new AppError(429, 'too_many_streams', 'Too many requests', refusal);
  // Every topic is checked first, so a bad one is an HTTP error rather than a stream that breaks later.
  for (const topic of topics) {
    const checked = await ctx.hub.check(auth, topic);
    if (!checked.ok) throw new AppError(CHECK_STATUS[checked.code], checked.code, 'Topic refused', checked.message);
  }

  const cursor = parseCursor(request.headers['last-event-id'] as string | undefined);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no', // proxies must not hold events back
  });
  raw.write('retry: 2000\n\n');
  const client = new SseClient(raw, auth, ctx);
  const release = ctx.limits.admit(ip, auth);
  ctx.hub.attach(client);
  raw.on('close', () => {
    client.open = false;
    ctx.hub.detach(client);
    release();
  });
  // The organization's topics start together so their events come out in one order, the
  // order the cursor assumes; the ledger's sequence is separate.
  await ctx.hub.subscribeAll(
    client,
    topics.filter((t) => t !== LEDGER_CLIENT_TOPIC),
    cursor.org,
  );
  if (topics.includes(LEDGER_CLIENT_TOPIC)) await ctx.hub.subscribe(client, LEDGER_CLIENT_TOPIC, cursor.ledger);
}
