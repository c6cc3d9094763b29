// Real-time events: GET /api/v1/ws (WebSocket; a plain GET describes the protocol),
// POST /api/v1/ws/ticket, and GET /api/v1/events (Server-Sent Events). One hub per app
// serves both transports; see README.md in this folder for the protocol.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, Gauge, type Registry } from 'prom-client';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { errorResponses } from '../../platform/http/schemas.js';
import { EventHub } from './events.hub.js';
import { BUILT_IN_TOPIC_KINDS } from './events.kinds.js';
import { ConnectionLimits } from './events.limits.js';
import { BEARER_PROTOCOL_PREFIX, CLOSE, SUBPROTOCOL } from './events.protocol.js';
import { streamEvents } from './events.sse.js';
import { createTicketStore } from './events.tickets.js';
import { topicRegistry } from './events.topics.js';
import { acceptWebSockets, type UpgradeContext } from './events.upgrade.js';

const tags = ['events'];
const Topics = Type.String({
  maxLength: 4096,
  description: 'Comma-separated topics: org, project:<id>, run:<id>, job:<id>, job:<id>:log, agents, approvals, ledger',
});
const Ticket = Type.String({ maxLength: 100, description: 'A single-use ticket from POST /api/v1/ws/ticket' });
const WsQuery = Type.Object(
  {
    topics: Type.Optional(Topics),
    ticket: Type.Optional(Ticket),
    project_id: Type.Optional(Type.String({ format: 'uuid', description: 'Seed 003 alias for topics=project:<id>' })),
  },
  { additionalProperties: false },
);
const SseQuery = Type.Object({ topics: Topics, ticket: Type.Optional(Ticket) }, { additionalProperties: false });
const Info = Type.Object({
  url: Type.String(),
  subprotocol: Type.String(),
  authentication: Type.Array(Type.String()),
  heartbeat_seconds: Type.Integer(),
  max_topics: Type.Integer(),
  max_buffer_bytes: Type.Integer(),
  topics: Type.Array(Type.String()),
  close_codes: Type.Record(Type.String(), Type.Integer()),
});

function registerMetrics(registry: Registry, hub: EventHub): void {
  const metric = <T>(name: string, make: () => T): T => {
    registry.removeSingleMetric(name); // an app rebuilt on the same deps replaces its gauges
    return make();
  };
  const registers = [registry];
  metric(
    'cairn_event_streams',
    () =>
      new Gauge({
        name: 'cairn_event_streams',
        help: 'Open event streams (WebSocket and SSE)',
        registers,
        collect() {
          this.set(hub.clientCount);
        },
      }),
  );
  metric(
    'cairn_event_stream_subscriptions',
    () =>
      new Gauge({
        name: 'cairn_event_stream_subscriptions',
        help: 'Acknowledged topic subscriptions of open event streams',
        registers,
        collect() {
          this.set(hub.subscriptionCount);
        },
      }),
  );
  metric(
    'cairn_event_stream_buffered_bytes',
    () =>
      new Gauge({
        name: 'cairn_event_stream_buffered_bytes',
        help: 'Bytes queued for event stream clients and not yet sent',
        registers,
        collect() {
          this.set(hub.bufferedBytes);
        },
      }),
  );
  for (const [name, help, key] of [
    ['cairn_event_stream_connections_total', 'Event streams opened', 'connections'],
    ['cairn_event_stream_messages_total', 'Events sent to stream clients', 'messages'],
    ['cairn_event_stream_slow_consumers_total', 'Streams closed because the client read too slowly', 'slowConsumers'],
  ] as const) {
    metric(
      name,
      () =>
        new Counter({
          name,
          help,
          registers,
          collect() {
            this.reset();
            this.inc(hub.counters[key]);
          },
        }),
    );
  }
}

export function eventRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const { config } = deps;
    topicRegistry.register(...BUILT_IN_TOPIC_KINDS);
    const hub = new EventHub({ db: deps.db, bus: deps.bus, log: app.log }, topicRegistry, {
      maxTopics: config.eventsMaxTopics,
      heartbeatMs: config.eventsHeartbeatSeconds * 1000,
    });
    const ctx: UpgradeContext = {
      hub,
      limits: new ConnectionLimits({ perUser: config.eventsConnectionsPerUser, perIp: config.eventsConnectionsPerIp }),
      tickets: createTicketStore(deps.cache),
      authenticator: deps.authenticator,
      config,
      log: app.log,
    };
    registerMetrics(deps.metrics, hub);
    const stopUpgrades = acceptWebSockets(app, ctx);
    // Streams end when shutdown starts: clients reconnect elsewhere while requests drain.
    app.addHook('preClose', async () => {
      stopUpgrades();
      hub.close();
    });

    app.get(
      '/ws',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'WebSocket event stream (upgrade); a plain GET describes the protocol',
          description:
            `Upgrade with the "${SUBPROTOCOL}" subprotocol. Authenticate with an Authorization header, the ` +
            `"${BEARER_PROTOCOL_PREFIX}<access token>" subprotocol, or ?ticket= (POST /api/v1/ws/ticket). ` +
            'Send {"type":"subscribe","topic":"project:<id>","since":"<last event id>"} and {"type":"unsubscribe","topic":…}; ' +
            'receive {id,type,topic,at,data}: events (dotted types) and control messages (welcome, subscribed, resync, error, pong). ' +
            'Refused upgrades get a plain HTTP status (401, 429) with a problem+json body.',
          querystring: WsQuery,
          response: {
            101: { description: 'Switching Protocols: the WebSocket stream', type: 'null' },
            200: Info,
            ...errorResponses(404),
          },
        },
      },
      async () => ({
        url: '/api/v1/ws',
        subprotocol: SUBPROTOCOL,
        authentication: [
          'Authorization: Bearer <token>',
          `Sec-WebSocket-Protocol: ${SUBPROTOCOL}, ${BEARER_PROTOCOL_PREFIX}<token>`,
          '?ticket=<ticket>',
        ],
        heartbeat_seconds: config.eventsHeartbeatSeconds,
        max_topics: config.eventsMaxTopics,
        max_buffer_bytes: config.eventsMaxBufferBytes,
        topics: topicRegistry.names(),
        close_codes: { ...CLOSE },
      }),
    );

    app.post(
      '/ws/ticket',
      {
        config: { permission: 'authenticated' },
        schema: {
          tags,
          summary: 'A single-use ticket (valid 30 s) to open an event stream where headers cannot be set',
          response: {
            201: Type.Object({ ticket: Type.String(), expires_at: Type.String({ format: 'date-time' }) }),
            ...errorResponses(),
          },
        },
      },
      async (request, reply) => reply.code(201).send(await ctx.tickets.issue(request.headers.authorization!)),
    );

    app.get(
      '/events',
      {
        // Authenticated in the handler: a ticket in the query counts too.
        config: { permission: 'public' },
        schema: {
          tags,
          summary: 'Server-Sent Events stream of the same topics (fallback for clients without WebSocket)',
          description:
            'Each message: `id: <cursor>` and `data: <envelope>` (the WebSocket envelope). Reconnect with Last-Event-ID to resume. ' +
            'A refused topic is an HTTP error before the stream starts (400 unknown, 403 forbidden, 404 not found).',
          querystring: SseQuery,
          response: {
            200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: Type.String() } } },
            ...errorResponses(403, 404, 503),
          },
        },
      },
      (request, reply) => streamEvents(ctx, request, reply, request.query),
    );
  };
}
