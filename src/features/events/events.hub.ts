// The hub: this replica's stream clients, their subscriptions and delivery. Transports
// (WebSocket, SSE) hand it clients and subscribe/unsubscribe requests; it authorizes each
// topic exactly as the REST read would, starts or resumes it without gaps or duplicates,
// and closes clients whose credentials are revoked.
import type { FastifyBaseLogger } from 'fastify';
import type { AuthContext } from '../../platform/auth.js';
import { compareEventIds, type Bus } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import { AUTH_TOPIC } from '../auth/authenticate.js';
import { Payload, isLocalId, newSubscription, type Pending, type StreamClient, type Subscription } from './events.delivery.js';
import { OrgFeed, type EventSource } from './events.feed.js';
import { LEDGER_CLIENT_TOPIC, LedgerFeed } from './events.ledger.js';
import { CLOSE, controlMessage, errorMessage, type ErrorCode, type ResyncReason } from './events.protocol.js';
import { allows, type TopicKind, type TopicRegistry } from './events.topics.js';

export type TopicCheck = { ok: true; kind: TopicKind | null } | { ok: false; code: ErrorCode; message: string };

export interface HubOptions {
  maxTopics: number;
  heartbeatMs: number;
}

/** Events that may wait while one subscription is being set up; beyond this it resyncs. */
const MAX_PENDING = 10_000;
const HEARTBEAT_SLICES = 10;
const REVOCATION_KEYS = ['sessionId', 'tokenId', 'userId', 'agentId', 'poolId'] as const;

export class EventHub {
  private readonly feeds = new Map<string, OrgFeed>();
  private readonly ledger: LedgerFeed;
  // Clients are pinged in slices spread over the interval, each exactly once per interval.
  private readonly slices = Array.from({ length: HEARTBEAT_SLICES }, () => new Set<StreamClient>());
  private nextSlice = 0;
  private tick = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly offAuth: () => void;
  readonly counters = { connections: 0, messages: 0, slowConsumers: 0 };

  constructor(
    private readonly deps: { db: Queryable; bus: Bus; log: FastifyBaseLogger },
    readonly registry: TopicRegistry,
    private readonly options: HubOptions,
  ) {
    this.ledger = new LedgerFeed(deps, (s, p) => this.deliver(s, p));
    this.offAuth = deps.bus.subscribe(AUTH_TOPIC, (event) => this.revoke(event.type, event.data as Record<string, unknown>));
    this.timer = setInterval(() => this.heartbeat(), options.heartbeatMs / HEARTBEAT_SLICES).unref();
  }

  get clientCount(): number {
    return this.slices.reduce((n, s) => n + s.size, 0);
  }

  /** Bytes queued for all clients: what slow readers cost this replica (each is cut off past its limit). */
  get bufferedBytes(): number {
    let n = 0;
    for (const slice of this.slices) for (const client of slice) n += client.bufferedBytes();
    return n;
  }

  /** Acknowledged subscriptions: one still starting (waiting for its source) receives nothing yet. */
  get subscriptionCount(): number {
    let n = 0;
    for (const slice of this.slices) {
      for (const client of slice) for (const subscription of client.subscriptions.values()) if (!subscription.pending) n++;
    }
    return n;
  }

  attach(client: StreamClient): void {
    this.slices[this.nextSlice++ % HEARTBEAT_SLICES]!.add(client);
    this.counters.connections++;
  }

  detach(client: StreamClient): void {
    for (const subscription of client.subscriptions.values()) this.release(subscription);
    client.subscriptions.clear();
    for (const slice of this.slices) slice.delete(client);
  }

  /** Whether `auth` may follow `topic`: the same permission and existence checks as the REST read. */
  async check(auth: AuthContext, topic: string): Promise<TopicCheck> {
    if (topic === LEDGER_CLIENT_TOPIC) return { ok: true, kind: null };
    const parsed = this.registry.parse(topic);
    if (!parsed) return { ok: false, code: 'unknown_topic', message: `No topic "${topic}"; GET /api/v1/ws lists them.` };
    if (!allows(auth, parsed.kind.permission)) {
      return { ok: false, code: 'forbidden', message: `This topic needs the "${parsed.kind.permission}" permission.` };
    }
    if (parsed.id !== null && !(await parsed.kind.exists!(this.deps.db, auth.orgId, parsed.id))) {
      // The same answer for another organization's resource and a missing one.
      return { ok: false, code: 'topic_not_found', message: `${topic} was not found.` };
    }
    return { ok: true, kind: parsed.kind };
  }

  /** Subscribes, answering on the stream: `subscribed` (maybe `resync`) then events, or `error`. */
  subscribe(client: StreamClient, topic: string, since?: string): Promise<void> {
    return this.subscribeAll(client, [topic], since);
  }

  /**
   * Subscribes several topics from one `since` as a unit: one history read, and their
   * events in one order, which a single resume cursor (SSE's Last-Event-ID) relies on.
   */
  async subscribeAll(client: StreamClient, topics: readonly string[], since?: string): Promise<void> {
    const accepted: Subscription[] = [];
    for (const topic of topics) {
      if (client.subscriptions.has(topic)) this.unsubscribe(client, topic, false);
      if (client.subscriptions.size + accepted.length >= this.options.maxTopics) {
        client.sendControl(errorMessage('too_many_topics', `At most ${this.options.maxTopics} topics per stream.`, topic));
        continue;
      }
      let checked: TopicCheck;
      try {
        checked = await this.check(client.auth, topic);
      } catch (error) {
        this.unavailable(client, topic, error);
        continue;
      }
      if (!client.open) return;
      if (checked.ok) accepted.push(newSubscription(client, topic, checked.kind, checked.kind ? client.auth.orgId : null));
      else client.sendControl(errorMessage(checked.code, checked.message, topic));
    }
    for (const group of [accepted.filter((s) => s.orgId !== null), accepted.filter((s) => s.orgId === null)]) {
      if (group.length === 0) continue;
      const source = group[0]!.orgId === null ? this.ledger : this.feedFor(group[0]!.orgId);
      const pending: Pending = [];
      for (const subscription of group) {
        const concurrent = client.subscriptions.get(subscription.topic);
        if (concurrent) this.drop(concurrent); // two subscribes to one topic raced: the later one wins
        subscription.pending = pending;
        client.subscriptions.set(subscription.topic, subscription);
        source.add(subscription);
      }
      try {
        await this.start(group, source, since, pending);
      } catch (error) {
        for (const subscription of group.filter((s) => this.current(s))) {
          this.drop(subscription);
          this.unavailable(client, subscription.topic, error);
        }
      }
    }
  }

  unsubscribe(client: StreamClient, topic: string, acknowledge = true): void {
    const subscription = client.subscriptions.get(topic);
    if (!subscription) {
      if (acknowledge) client.sendControl(errorMessage('not_subscribed', `Not subscribed to ${topic}.`, topic));
      return;
    }
    this.drop(subscription);
    if (acknowledge) client.sendControl(controlMessage('unsubscribed', topic, {}));
  }

  /** Hands an event to a subscription: held while it starts, skipped if already sent, then filtered per subscriber. */
  deliver(subscription: Subscription, payload: Payload): void {
    if (subscription.pending) {
      if (subscription.pending.length < MAX_PENDING) subscription.pending.push({ subscription, payload });
      else subscription.resync = 'overflow';
      return;
    }
    const { id } = payload;
    if (subscription.after !== null && id !== null && !isLocalId(id)) {
      if (compareEventIds(id, subscription.after) <= 0) return;
      subscription.after = null;
    }
    this.send(subscription, payload);
  }

  resync(subscription: Subscription, reason: ResyncReason, position: string): void {
    if (subscription.pending) subscription.resync = reason;
    else subscription.client.sendControl(controlMessage('resync', subscription.topic, { reason, position }));
  }

  close(): void {
    clearInterval(this.timer);
    this.offAuth();
    for (const slice of this.slices) for (const client of slice) client.close(CLOSE.goingAway, 'server shutting down');
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
    this.ledger.close();
  }

  private send(subscription: Subscription, payload: Payload): void {
    const { auth } = subscription.client;
    if (!allows(auth, payload.access)) return;
    if (subscription.kind?.visibleTo && !subscription.kind.visibleTo(payload.event, auth)) return;
    if (payload.id !== null) subscription.position = payload.id;
    subscription.client.sendEvent(payload, subscription);
    this.counters.messages++;
  }

  /** Acknowledges, sends what was missed (or `resync`), then releases what arrived meanwhile. */
  private async start(group: Subscription[], source: EventSource, since: string | undefined, pending: Pending): Promise<void> {
    await source.ready;
    const resumable = group.filter((s) => s.kind?.resumable !== false);
    const backlog = since === undefined || resumable.length === 0 ? null : await source.backlog(since);
    const resumed = backlog !== null && typeof backlog === 'object';
    const position = resumed ? since! : await source.position();
    const live = group.filter((s) => this.current(s));
    for (const subscription of live) {
      subscription.position = position;
      subscription.client.sendControl(controlMessage('subscribed', subscription.topic, { position }));
      if (since === undefined || (resumed && resumable.includes(subscription))) continue;
      const reason = resumable.includes(subscription) ? (backlog as ResyncReason) : 'not_resumable';
      subscription.client.sendControl(controlMessage('resync', subscription.topic, { reason, position }));
    }
    if (resumed) {
      for (const event of backlog.events) {
        const route = source.route(event);
        if (!route) continue;
        for (const topic of route.topics) {
          const payload = new Payload(event, topic, route.access);
          for (const s of live) if (s.topic === topic && resumable.includes(s)) this.send(s, payload);
        }
      }
    }
    const after = resumed ? backlog.last : position;
    for (const subscription of live) {
      subscription.pending = null;
      subscription.after = after;
      subscription.position = after;
      if (subscription.resync) this.resync(subscription, subscription.resync, after);
      subscription.resync = null;
    }
    for (const { subscription, payload } of pending) if (this.current(subscription)) this.deliver(subscription, payload);
  }

  private unavailable(client: StreamClient, topic: string, error: unknown): void {
    this.deps.log.warn({ err: error, topic }, 'event stream: subscribing failed');
    client.sendControl(errorMessage('unavailable', 'Subscribing failed; try again.', topic));
  }

  /** Still wanted: the client is open and has not unsubscribed (or resubscribed) meanwhile. */
  private current(subscription: Subscription): boolean {
    return subscription.client.open && subscription.client.subscriptions.get(subscription.topic) === subscription;
  }

  private drop(subscription: Subscription): void {
    if (subscription.client.subscriptions.get(subscription.topic) === subscription) {
      subscription.client.subscriptions.delete(subscription.topic);
    }
    this.release(subscription);
  }

  private release(subscription: Subscription): void {
    if (subscription.kind === null) return void this.ledger.remove(subscription);
    const feed = this.feeds.get(subscription.orgId!);
    if (feed?.remove(subscription)) {
      feed.close();
      this.feeds.delete(subscription.orgId!);
    }
  }

  private feedFor(orgId: string): OrgFeed {
    let feed = this.feeds.get(orgId);
    if (!feed) {
      feed = new OrgFeed(
        {
          bus: this.deps.bus,
          registry: this.registry,
          deliver: (s, p) => this.deliver(s, p),
          resync: (s, r, p) => this.resync(s, r, p),
          warn: (error, message) => this.deps.log.warn({ err: error }, message),
        },
        orgId,
      );
      this.feeds.set(orgId, feed);
    }
    return feed;
  }

  /** Revocations, disabled users and role changes close the affected streams on every replica. */
  private revoke(type: string, match: Record<string, unknown>): void {
    // A pool's rotated registration token says nothing about its agents' own tokens.
    const keys = REVOCATION_KEYS.filter((k) => typeof match[k] === 'string' && (k !== 'poolId' || type === 'pool.deleted'));
    if (keys.length === 0) return;
    for (const slice of this.slices) {
      for (const client of slice) {
        const auth = client.auth as unknown as Record<string, unknown>;
        if (keys.some((k) => auth[k] === match[k])) client.close(CLOSE.credentialsRevoked, 'credentials revoked or changed');
      }
    }
  }

  private heartbeat(): void {
    for (const client of this.slices[this.tick++ % HEARTBEAT_SLICES]!) client.heartbeat();
  }
}
