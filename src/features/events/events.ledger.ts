// The `ledger` topic: signed checkpoints, public data any authenticated client may follow.
// A checkpoint's id is its tree size. Checkpoints are kept in the database, so a client
// resumes from there rather than from a bounded buffer; one that missed too many is told
// to resync (the newest checkpoint supersedes the older ones anyway).
import type { Bus, BusEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import { checkpointView } from '../ledger/ledger.checkpoints.js';
import { LEDGER_TOPIC } from '../ledger/ledger.loops.js';
import { checkpointsAfter, latestCheckpoint } from '../ledger/ledger.queries.js';
import { Payload, type Subscription } from './events.delivery.js';
import type { Backlog, EventSource } from './events.feed.js';
import type { ResyncReason } from './events.protocol.js';
import type { TopicAccess } from './events.topics.js';

export const LEDGER_CLIENT_TOPIC = 'ledger';
const CHECKPOINT = 'ledger.checkpoint';
const MAX_BACKLOG = 100;

function eventOf(view: { size: number; created_at: string }): BusEvent {
  return { topic: LEDGER_TOPIC, type: CHECKPOINT, data: view, at: view.created_at, id: String(view.size) };
}

export class LedgerFeed implements EventSource {
  private readonly subscriptions = new Set<Subscription>();
  private unsubscribe: (() => void) | null = null;
  readonly ready = Promise.resolve();

  constructor(
    private readonly deps: { db: Queryable; bus: Bus },
    private readonly deliver: (subscription: Subscription, payload: Payload) => void,
  ) {}

  add(subscription: Subscription): void {
    this.subscriptions.add(subscription);
    // Only `ledger.checkpoint` is public: the topic's other events are internal nudges.
    this.unsubscribe ??= this.deps.bus.subscribe(LEDGER_TOPIC, (event) => {
      if (event.type !== CHECKPOINT) return;
      const view = event.data as { size: number; created_at: string };
      const payload = new Payload(eventOf(view), LEDGER_CLIENT_TOPIC, 'authenticated');
      for (const s of this.subscriptions) this.deliver(s, payload);
    });
  }

  remove(subscription: Subscription): boolean {
    this.subscriptions.delete(subscription);
    if (this.subscriptions.size === 0) this.close();
    return false; // the hub keeps one ledger feed for good
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  async position(): Promise<string> {
    return String((await latestCheckpoint(this.deps.db))?.size ?? 0);
  }

  async backlog(since: string): Promise<Backlog | ResyncReason> {
    if (!/^\d{1,15}$/.test(since)) return 'too_old';
    const size = Number(since);
    const latest = (await latestCheckpoint(this.deps.db))?.size ?? 0;
    // A size beyond the newest checkpoint is not this log's (or the database was restored).
    if (size > latest) return 'too_old';
    const missed = await checkpointsAfter(this.deps.db, size, MAX_BACKLOG + 1);
    if (missed.length > MAX_BACKLOG) return 'too_old';
    const events = missed.map((row) => eventOf(checkpointView(row)));
    return { events, last: events.at(-1)?.id ?? since };
  }

  route(): { topics: string[]; access: TopicAccess } {
    return { topics: [LEDGER_CLIENT_TOPIC], access: 'authenticated' };
  }
}
