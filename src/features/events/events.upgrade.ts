// WebSocket upgrades of GET /api/v1/ws, handled on the HTTP server's 'upgrade' event with
// `ws` directly rather than through Fastify's request cycle: an accepted connection then
// keeps no request or reply objects alive, which is most of what an idle connection would
// otherwise cost. Everything is checked before the upgrade, so a refused client gets a
// plain HTTP status with a problem+json body (401, 429, …), never an open-then-closed socket.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import type { Config } from '../../config.js';
import type { AuthContext } from '../../platform/auth.js';
import { AppError } from '../../platform/errors.js';
import { PROBLEM_TYPE_BASE } from '../../platform/http/problem.js';
import type { Authenticator } from '../auth/authenticate.js';
import { authenticateStream } from './events.auth.js';
import type { EventHub } from './events.hub.js';
import type { ConnectionLimits } from './events.limits.js';
import { BEARER_PROTOCOL_PREFIX, SUBPROTOCOL, controlMessage } from './events.protocol.js';
import { WebSocketClient } from './events.socket.js';
import type { TicketStore } from './events.tickets.js';

export const WS_PATH = '/api/v1/ws';
const MAX_CLIENT_FRAME = 16_384;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface UpgradeContext {
  hub: EventHub;
  limits: ConnectionLimits;
  tickets: TicketStore;
  authenticator: Authenticator;
  config: Pick<Config, 'trustProxy' | 'eventsMaxBufferBytes' | 'eventsMaxTopics' | 'eventsHeartbeatSeconds'>;
  log: FastifyBaseLogger;
}

/** `topics=a,b` (and seed 003's `project_id=<id>`, meaning `project:<id>`), shared with the SSE route. */
export function topicsFromQuery(query: { topics?: string; project_id?: string }): string[] {
  const topics = (query.topics ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (query.project_id) topics.push(`project:${query.project_id.toLowerCase()}`);
  return [...new Set(topics)];
}

/** The client's address as Fastify would see it (behind a trusted proxy: the first X-Forwarded-For hop). */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy
    ? String(req.headers['x-forwarded-for'] ?? '')
        .split(',')[0]
        ?.trim()
    : '';
  return forwarded || req.socket.remoteAddress || 'unknown';
}

function parseQuery(url: URL, maxTopics: number): { ticket?: string; topics: string[] } | string {
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (!['ticket', 'topics', 'project_id'].includes(key)) return `unknown query parameter "${key}"`;
    if (key in query) return `query parameter "${key}" given twice`;
    query[key] = value;
  }
  if (query.project_id !== undefined && !UUID.test(query.project_id)) return 'project_id must be a UUID';
  if ((query.topics?.length ?? 0) > 4096) return 'topics is too long';
  const topics = topicsFromQuery(query);
  if (topics.length > maxTopics) return `at most ${maxTopics} topics`;
  return { ...(query.ticket !== undefined ? { ticket: query.ticket } : {}), topics };
}

function reject(socket: Duplex, requestId: string, status: number, code: string, detail: string): void {
  const title = STATUS_CODES[status] ?? 'Error';
  const body = JSON.stringify({ type: PROBLEM_TYPE_BASE + code, title, status, detail, code, instance: requestId });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n\r\n${body}`,
  );
}

export function acceptWebSockets(app: FastifyInstance, ctx: UpgradeContext): () => void {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false, // compression state costs ~300 KiB per connection at zlib defaults
    maxPayload: MAX_CLIENT_FRAME,
    clientTracking: false, // the hub tracks its clients
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, requestId: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.replace(/\/$/, '') !== WS_PATH) {
      return reject(socket, requestId, 404, 'route_not_found', `No WebSocket endpoint at ${url.pathname}.`);
    }
    const query = parseQuery(url, ctx.config.eventsMaxTopics);
    if (typeof query === 'string') return reject(socket, requestId, 400, 'validation_failed', query);
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    if (protocols.length > 0 && !protocols.includes(SUBPROTOCOL)) {
      return reject(socket, requestId, 400, 'unsupported_subprotocol', `Offer the "${SUBPROTOCOL}" subprotocol.`);
    }
    const ip = clientIp(req, ctx.config.trustProxy);
    const crowded = ctx.limits.refusal(ip);
    if (crowded) return reject(socket, requestId, 429, 'too_many_streams', crowded);
    let auth: AuthContext;
    try {
      const credentials = {
        authorization: req.headers.authorization,
        bearerProtocol: protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))?.slice(BEARER_PROTOCOL_PREFIX.length),
        ticket: query.ticket,
      };
      auth = await authenticateStream(ctx, credentials, { requestId, clientIp: ip });
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return reject(socket, requestId, error.status, error.code, error.detail ?? error.title);
    }
    const refusal = ctx.limits.refusal(ip, auth);
    if (refusal) return reject(socket, requestId, 429, 'too_many_streams', refusal);
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client = new WebSocketClient(
        ws,
        auth,
        ctx.hub,
        { maxBufferBytes: ctx.config.eventsMaxBufferBytes },
        ctx.limits.admit(ip, auth),
      );
      ctx.hub.attach(client);
      client.sendControl(
        controlMessage('welcome', null, {
          org_id: auth.orgId,
          heartbeat_seconds: ctx.config.eventsHeartbeatSeconds,
          max_topics: ctx.config.eventsMaxTopics,
        }),
      );
      for (const topic of query.topics) void ctx.hub.subscribe(client, topic);
    });
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {}); // a peer that vanishes mid-handshake is not our error
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    upgrade(req, socket, head, requestId).catch((error: unknown) => {
      ctx.log.error({ err: error, request_id: requestId }, 'event stream: upgrade failed');
      if (!socket.destroyed) reject(socket, requestId, 500, 'internal_error', `Quote request id ${requestId} when reporting it.`);
    });
  };
  app.server.on('upgrade', onUpgrade);
  return () => {
    app.server.off('upgrade', onUpgrade);
  };
}
