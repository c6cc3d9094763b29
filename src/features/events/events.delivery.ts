// What the hub, the feeds and the transports share: a stream client (one WebSocket or SSE
// connection), its subscriptions, and payloads (an event serialized once per client topic,
// then handed to every subscriber of that topic as the same string or buffer).
import type { AuthContext } from '../../platform/auth.js';
import type { BusEvent } from '../../platform/bus.js';
import type { Envelope, ResyncReason } from './events.protocol.js';
import type { TopicAccess, TopicKind } from './events.topics.js';

export interface StreamClient {
  readonly auth: AuthContext;
  readonly transport: 'websocket' | 'sse';
  /** Client topic → subscription; maintained by the hub. */
  readonly subscriptions: Map<string, Subscription>;
  /** False once the client is closing: nothing more is sent. */
  readonly open: boolean;
  sendEvent(payload: Payload, subscription: Subscription): void;
  sendControl(message: string): void;
  close(code: number, reason: string): void;
  /** Called every heartbeat interval: ping, and drop the client if the last ping went unanswered. */
  heartbeat(): void;
  /** Bytes queued for the client and not yet taken by the network. */
  bufferedBytes(): number;
}

export interface Subscription {
  readonly topic: string;
  readonly client: StreamClient;
  /** Null for the ledger's topic. */
  readonly kind: TopicKind | null;
  readonly orgId: string | null;
  /**
   * Events that arrive while the subscription is being set up, delivered once it knows
   * where it starts. Subscriptions started together share one list, so their events come
   * out in one order.
   */
  pending: Pending | null;
  /** Set while `pending` is in use when the client must resync (gap, overflow): sent after the subscription is acknowledged. */
  resync: ResyncReason | null;
  /** Ids up to this one were already sent (or predate the subscription); cleared by the first later id. */
  after: string | null;
  /** How far the subscription is known to be: where it started, then each id sent (SSE's Last-Event-ID is built from it). */
  position: string | null;
}

export type Pending = { subscription: Subscription; payload: Payload }[];

export function newSubscription(client: StreamClient, topic: string, kind: TopicKind | null, orgId: string | null): Subscription {
  return { topic, client, kind, orgId, pending: [], resync: null, after: null, position: null };
}

export class Payload {
  readonly id: string | null;
  readonly json: string;
  private bytes: Buffer | undefined;

  constructor(
    readonly event: BusEvent,
    readonly topic: string,
    /** What a subscriber needs to see this event at all. */
    readonly access: TopicAccess,
  ) {
    // Live-only events (log chunks) have no history id: they resume by offset, not by id.
    this.id = event.id ?? null;
    this.json = JSON.stringify({ id: this.id, type: event.type, topic, at: event.at, data: event.data } satisfies Envelope);
  }

  /** The UTF-8 bytes, made once and shared by every WebSocket that sends them. */
  get buffer(): Buffer {
    return (this.bytes ??= Buffer.from(this.json));
  }
}

/** Ids of events delivered while Redis was away: not comparable with history ids, never resumable. */
export const isLocalId = (id: string): boolean => id.startsWith('L');
