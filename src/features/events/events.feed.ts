// One organization's events on this replica: one bus subscription to `org:<id>` however
// many clients follow the organization, each event routed to the client topics it belongs
// to and serialized once per topic. The feed also keeps delivery gap-free when Redis comes
// and goes: after an interruption it reads what it missed from the shared history, or
// tells its clients to resync when that history cannot say.
import { NOTICE, compareEventIds, orgTopic, type Bus, type BusEvent } from '../../platform/bus.js';
import { Payload, isLocalId, type Subscription } from './events.delivery.js';
import type { ResyncReason } from './events.protocol.js';
import type { TopicAccess, TopicRegistry } from './events.topics.js';

export interface Backlog {
  events: BusEvent[];
  /** The newest id read: live delivery continues after it. */
  last: string;
}

/** Where subscriptions' events come from: an organization's feed, or the ledger's. */
export interface EventSource {
  readonly ready: Promise<void>;
  add(subscription: Subscription): void;
  /** Returns true when the source has no subscribers left (the hub drops it). */
  remove(subscription: Subscription): boolean;
  /** Where a new subscription starts. */
  position(): Promise<string>;
  /** What happened after `since`, or why a subscription must resync instead. */
  backlog(since: string): Promise<Backlog | ResyncReason>;
  /** The client topics an event belongs to and what seeing it needs; null when no client may see it. */
  route(event: BusEvent): { topics: string[]; access: TopicAccess } | null;
  close(): void;
}

export interface FeedOwner {
  readonly bus: Bus;
  readonly registry: TopicRegistry;
  deliver(subscription: Subscription, payload: Payload): void;
  resync(subscription: Subscription, reason: ResyncReason, position: string): void;
  warn(error: unknown, message: string): void;
}

export class OrgFeed implements EventSource {
  readonly topic: string;
  /** Client topic → its subscribers on this replica. */
  private readonly groups = new Map<string, Set<Subscription>>();
  private count = 0;
  private readonly unsubscribe: () => void;
  /** The newest history id dispatched here (null until known, or after a loss). */
  private lastId: string | null = null;
  private interrupted = false;
  private held: BusEvent[] = [];
  private catchingUp: Promise<void> = Promise.resolve();
  /** Resolves once events published anywhere reach this feed. */
  readonly ready: Promise<void>;

  constructor(
    private readonly owner: FeedOwner,
    orgId: string,
  ) {
    this.topic = orgTopic(orgId);
    this.unsubscribe = owner.bus.subscribe(this.topic, (event) => this.onBusEvent(event), { notices: true });
    this.ready = owner.bus.ready(this.topic).then(async () => {
      const position = await owner.bus.position(this.topic);
      this.lastId ??= isLocalId(position) ? null : position;
    });
  }

  get size(): number {
    return this.count;
  }

  add(subscription: Subscription): void {
    let group = this.groups.get(subscription.topic);
    if (!group) this.groups.set(subscription.topic, (group = new Set()));
    group.add(subscription);
    this.count++;
  }

  /** Returns true when the feed has no subscribers left (the caller drops it). */
  remove(subscription: Subscription): boolean {
    const group = this.groups.get(subscription.topic);
    if (group?.delete(subscription)) {
      this.count--;
      if (group.size === 0) this.groups.delete(subscription.topic);
    }
    return this.count === 0;
  }

  close(): void {
    this.unsubscribe();
  }

  /** Where a new subscriber starts: this feed's newest id when it is live, else the shared history's. */
  async position(): Promise<string> {
    if (this.lastId !== null && !this.interrupted) return this.lastId;
    return this.owner.bus.position(this.topic);
  }

  async backlog(since: string): Promise<Backlog | ResyncReason> {
    const events = await this.owner.bus.history(this.topic, since);
    if (!events) return 'too_old';
    // A gap marker means some replica's events never reached the history: resuming across it would hide that.
    if (events.some((e) => e.type === NOTICE.gap)) return 'gap';
    return { events, last: events.at(-1)?.id ?? since };
  }

  route(event: BusEvent): { topics: string[]; access: TopicAccess } | null {
    if (event.type.startsWith('bus.')) return null;
    const access = this.owner.registry.permissionFor(event.type);
    // No feature claims this type, so no client may see it.
    return access === null ? null : { topics: this.owner.registry.routes(event), access };
  }

  private onBusEvent(event: BusEvent): void {
    if (event.type === NOTICE.interrupted) {
      this.interrupted = true;
      return;
    }
    if (event.type === NOTICE.resumed) {
      this.catchingUp = this.catchingUp
        .then(() => this.catchUp())
        .catch((error: unknown) => {
          this.owner.warn(error, 'event stream: catching up after a bus interruption failed');
          this.interrupted = false;
          this.lastId = null;
          this.resyncAll('gap', '');
        });
      return;
    }
    // While interrupted, history events wait until what was missed has been read back.
    if (this.interrupted && event.id && !isLocalId(event.id)) this.held.push(event);
    else this.dispatch(event);
  }

  private async catchUp(): Promise<void> {
    if (!this.interrupted) return;
    const missed = this.lastId ? await this.owner.bus.history(this.topic, this.lastId) : null;
    if (missed) {
      for (const event of missed) this.dispatch(event);
    } else {
      this.lastId = null;
      const position = await this.owner.bus.position(this.topic);
      this.resyncAll('gap', position);
    }
    this.interrupted = false;
    const held = this.held;
    this.held = [];
    for (const event of held) this.dispatch(event);
  }

  private resyncAll(reason: ResyncReason, position: string): void {
    for (const group of this.groups.values()) {
      for (const subscription of group) this.owner.resync(subscription, reason, position);
    }
  }

  private dispatch(event: BusEvent): void {
    const { id } = event;
    if (id && !isLocalId(id)) {
      if (this.lastId !== null && compareEventIds(id, this.lastId) <= 0) return; // already dispatched
      this.lastId = id;
    }
    if (event.type === NOTICE.gap) return this.resyncAll('gap', id ?? '');
    const route = this.route(event);
    if (!route) return;
    for (const topic of route.topics) {
      const group = this.groups.get(topic);
      if (!group) continue;
      const payload = new Payload(event, topic, route.access);
      for (const subscription of group) this.owner.deliver(subscription, payload);
    }
  }
}
