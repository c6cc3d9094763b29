// The wire protocol of the event streams, shared by WebSocket and SSE. Every message the
// server sends is one envelope `{id, type, topic, at, data}`: domain events have a dotted
// type (`project.updated`) and an id to resume from; control messages have a plain type
// (`welcome`, `subscribed`, `resync`, …) and a null id. See README.md in this folder.

/** WebSocket close codes the server uses, and what a client should do about each. */
export const CLOSE = {
  /** The server is shutting down: reconnect (another replica will answer). */
  goingAway: 1001,
  /** Session or token revoked, user disabled or role changed: get fresh credentials, then reconnect. */
  credentialsRevoked: 4001,
  /** The client read too slowly and its send buffer passed the limit: reconnect and resume. */
  slowConsumer: 4008,
  /** Too many malformed messages. */
  policy: 1008,
} as const;

/** The subprotocol the server speaks; a client may also offer `bearer.<access token>` to authenticate. */
export const SUBPROTOCOL = 'cairn.v1';
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

export type ControlType = 'welcome' | 'subscribed' | 'unsubscribed' | 'resync' | 'error' | 'pong';

/** Why a subscription must refetch by REST instead of resuming. */
export type ResyncReason =
  | 'too_old' // the id is no longer in the history (or never was)
  | 'not_resumable' // this topic does not resume (job logs: read them by offset)
  | 'gap' // a replica lost its link to the others for a while; events may be missing
  | 'overflow'; // more arrived while subscribing than the server holds for one subscription

export type ErrorCode =
  'bad_message' | 'unknown_topic' | 'topic_not_found' | 'forbidden' | 'too_many_topics' | 'not_subscribed' | 'unavailable';

export interface Envelope<T = unknown> {
  id: string | null;
  type: string;
  topic: string | null;
  at: string;
  data: T;
}

export function controlMessage(type: ControlType, topic: string | null, data: Record<string, unknown>): string {
  return JSON.stringify({ id: null, type, topic, at: new Date().toISOString(), data } satisfies Envelope);
}

export function errorMessage(code: ErrorCode, message: string, topic: string | null = null): string {
  return controlMessage('error', topic, { code, message });
}

export type ClientMessage =
  { type: 'subscribe'; topic: string; since?: string } | { type: 'unsubscribe'; topic: string } | { type: 'ping' };

const MAX_TOPIC_LENGTH = 200;
const MAX_ID_LENGTH = 100;

/** Parses one client frame; returns a reason string for anything malformed. */
export function parseClientMessage(text: string): ClientMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  if (m.type === 'ping') return { type: 'ping' };
  if (m.type !== 'subscribe' && m.type !== 'unsubscribe') return 'type must be subscribe, unsubscribe or ping';
  if (typeof m.topic !== 'string' || m.topic.length === 0 || m.topic.length > MAX_TOPIC_LENGTH) {
    return `topic must be a string of 1 to ${MAX_TOPIC_LENGTH} characters`;
  }
  if (m.type === 'unsubscribe') return { type: 'unsubscribe', topic: m.topic };
  if (m.since !== undefined && (typeof m.since !== 'string' || m.since.length === 0 || m.since.length > MAX_ID_LENGTH)) {
    return `since must be an event id (a string of 1 to ${MAX_ID_LENGTH} characters)`;
  }
  return { type: 'subscribe', topic: m.topic, ...(m.since !== undefined ? { since: m.since } : {}) };
}
