// The Redis side of the event bus (see bus.ts for the contract). Non-org topics share one
// channel and reach local subscribers first. Org topics go through one script that appends
// the event to the organization's Redis stream and publishes it on the organization's
// channel, so every replica, this one included, sees the same order and the same ids; a
// replica subscribes only to the channels of organizations it has subscribers for.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  DEFAULT_HISTORY,
  IdClock,
  LIVE_ONLY_TYPES,
  LocalRouter,
  NOTICE,
  isOrgTopic,
  type Bus,
  type BusEvent,
  type HistoryOptions,
  type Logger,
} from './bus.js';

export const DEFAULT_BUS_CHANNEL = 'cairn:bus';

// Appending and publishing in one script makes the channel's order the stream's order.
const SCRIPTS = {
  cairnBusAppend: `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], id .. ' ' .. ARGV[3])
return id`,
  cairnBusPosition: `local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = last[1] and last[1][1] or redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return id`,
  // Resuming from an id is only complete if that very entry is still there: trimmed,
  // expired and lost-with-a-Redis-restart histories all fail this check.
  cairnBusHistory: `if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
return redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])`,
};
type Scripted = Record<keyof typeof SCRIPTS, (key: string, ...args: (string | number)[]) => Promise<unknown>>;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

function parseMessage(id: string, json: string): BusEvent {
  const event = JSON.parse(json) as BusEvent;
  if (id !== '-') event.id = id;
  return event;
}

/** `publisher` and `subscriber` must be separate connections (a subscribed one cannot publish). */
export function createRedisBus(
  publisher: Redis,
  subscriber: Redis,
  log?: Logger,
  channel = DEFAULT_BUS_CHANNEL,
  history: HistoryOptions = DEFAULT_HISTORY,
): Bus {
  const origin = randomUUID();
  const clock = new IdClock();
  const onError = (error: unknown) => log?.error({ err: error }, 'bus subscriber failed');
  for (const [name, lua] of Object.entries(SCRIPTS)) publisher.defineCommand(name, { numberOfKeys: 1, lua });
  const scripts = publisher as unknown as Scripted;
  const channelOf = (topic: string) => `${channel}:${topic}`;
  const keyOf = (topic: string) => `${channel}:history:${topic}`;
  const ttl = String(history.ttlMs);
  const size = String(history.size);
  // Redis channels and patterns this replica needs, counted by local subscriptions.
  const targets = new Map<string, { count: number; ready: Promise<void> }>();
  const degraded = new Set<string>(); // org topics delivered locally only since Redis went away
  let subscribed = false;
  let interrupted = subscriber.status !== 'ready';

  const targetOf = (key: string, isPrefix: boolean): string | null => {
    if (!isPrefix) return isOrgTopic(key) ? `c:${channelOf(key)}` : null;
    if ('org:'.startsWith(key)) return `p:${channel}:org:*`;
    return isOrgTopic(key) ? `p:${channelOf(key).replace(/[*?[\]\\]/g, '\\$&')}*` : null;
  };
  const listen = async (target: string, on: boolean) => {
    if (subscriber.status !== 'ready') return; // done on 'ready'
    const name = target.slice(2);
    const pattern = target.startsWith('p:');
    try {
      if (on) await (pattern ? subscriber.psubscribe(name) : subscriber.subscribe(name));
      else await (pattern ? subscriber.punsubscribe(name) : subscriber.unsubscribe(name));
    } catch (error) {
      log?.warn({ err: error, target: name }, 'bus: redis (un)subscribe failed; local delivery only');
    }
  };
  const router = new LocalRouter((key, isPrefix, present) => {
    const target = targetOf(key, isPrefix);
    if (!target) return;
    const entry = targets.get(target);
    if (present && entry) entry.count++;
    else if (present) targets.set(target, { count: 1, ready: listen(target, true) });
    else if (entry && --entry.count === 0) {
      targets.delete(target);
      void listen(target, false);
    }
  });

  const deliverLocally = (event: BusEvent) => {
    if (!LIVE_ONLY_TYPES.has(event.type)) {
      event.id = clock.next('L');
      degraded.add(event.topic);
    }
    router.deliver(event, onError);
  };
  const connected = () => publisher.status === 'ready' && subscriber.status === 'ready' && !interrupted;
  const sendGaps = () => {
    if (!connected()) return;
    for (const topic of degraded) {
      degraded.delete(topic);
      const json = JSON.stringify({ topic, type: NOTICE.gap, data: {}, at: new Date().toISOString() });
      scripts.cairnBusAppend(keyOf(topic), size, ttl, json, channelOf(topic)).catch(() => degraded.add(topic));
    }
  };

  const onReady = () => {
    const all = [...targets.keys()].map((target) => listen(target, true));
    all.push(subscriber.subscribe(channel).then(() => void (subscribed = true)));
    void Promise.allSettled(all).then(() => {
      if (!interrupted || subscriber.status !== 'ready') return;
      interrupted = false;
      router.notify(NOTICE.resumed, onError);
      sendGaps();
    });
  };
  const onClose = () => {
    subscribed = false;
    if (interrupted) return;
    interrupted = true;
    router.notify(NOTICE.interrupted, onError);
  };
  const onMessage = (received: string, message: string) => {
    if (received === channel) {
      try {
        const parsed = JSON.parse(message) as { origin: string; event: BusEvent };
        if (parsed.origin !== origin) router.deliver(parsed.event, onError); // own events were delivered locally
      } catch (error) {
        log?.warn({ err: error }, 'bus: dropped a malformed message');
      }
      return;
    }
    onOrgMessage(message, 'exact');
  };
  const onOrgMessage = (message: string, only: 'exact' | 'prefix') => {
    const space = message.indexOf(' ');
    try {
      router.deliver(parseMessage(message.slice(0, space), message.slice(space + 1)), onError, only);
    } catch (error) {
      log?.warn({ err: error }, 'bus: dropped a malformed message');
    }
  };
  const onPatternMessage = (_pattern: string, _channel: string, message: string) => onOrgMessage(message, 'prefix');
  subscriber.on('ready', onReady);
  subscriber.on('close', onClose);
  subscriber.on('message', onMessage);
  subscriber.on('pmessage', onPatternMessage);
  publisher.on('ready', sendGaps);
  if (subscriber.status === 'ready') onReady();

  return {
    kind: 'redis',
    publish(topic, type, data) {
      const event: BusEvent = { topic, type, data, at: new Date().toISOString() };
      if (!isOrgTopic(topic)) {
        router.deliver(event, onError);
        if (publisher.status !== 'ready') return;
        publisher.publish(channel, JSON.stringify({ origin, event })).catch((error: unknown) => {
          log?.warn({ err: error, topic }, 'bus: redis publish failed; delivered locally only');
        });
        return;
      }
      // Org events reach local subscribers through Redis too, so every replica sees one order.
      if (!connected()) return deliverLocally(event);
      const json = JSON.stringify(event);
      const sent = LIVE_ONLY_TYPES.has(type)
        ? publisher.publish(channelOf(topic), `- ${json}`)
        : scripts.cairnBusAppend(keyOf(topic), size, ttl, json, channelOf(topic));
      sent.catch((error: unknown) => {
        log?.warn({ err: error, topic }, 'bus: redis publish failed; delivered locally only');
        deliverLocally(event);
      });
    },
    subscribe: (topic, handler, options) => router.add(topic, handler, options?.notices),
    async ready(topic) {
      const isPrefix = topic.endsWith('*');
      const target = targetOf(isPrefix ? topic.slice(0, -1) : topic, isPrefix);
      await (target ? targets.get(target)?.ready : undefined);
    },
    async history(topic, afterId) {
      if (!STREAM_ID.test(afterId) || !connected()) return null;
      try {
        const rows = (await scripts.cairnBusHistory(keyOf(topic), afterId, history.size * 2)) as [string, string[]][] | null;
        return rows && rows.map(([id, fields]) => parseMessage(id, fields[1]!));
      } catch (error) {
        log?.warn({ err: error, topic }, 'bus: reading history failed');
        return null;
      }
    },
    async position(topic) {
      if (!connected()) return clock.next('L');
      const start = JSON.stringify({ topic, type: NOTICE.start, data: {}, at: new Date().toISOString() });
      return scripts.cairnBusPosition(keyOf(topic), size, ttl, start).then(String, () => clock.next('L'));
    },
    status() {
      const ok = publisher.status === 'ready' && subscriber.status === 'ready' && subscribed;
      return {
        ok,
        detail: ok ? 'redis pub/sub' : `redis ${publisher.status}; events reach this replica's subscribers only`,
      };
    },
    async close() {
      subscriber.off('ready', onReady).off('close', onClose).off('message', onMessage).off('pmessage', onPatternMessage);
      publisher.off('ready', sendGaps);
    },
  };
}
