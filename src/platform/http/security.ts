// Headers, CORS, rate limits, compression and load shedding: the well-kept Fastify plugins
// (and helmet itself for the headers), configured once.
import compress from '@fastify/compress';
import cors from '@fastify/cors';
import helmet from 'helmet';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import { TooManyRequestsError } from '../errors.js';
import { sendProblem } from './problem.js';

/** Liveness, readiness and metrics, under every alias the seeds name. */
const PROBE_URL = /^\/(healthz|health(\/[a-z]+)?|metrics|api\/v1\/(health|liveness|readiness))(\?|$)/;

export async function registerSecurity(app: FastifyInstance, config: Config, redis: Redis | null): Promise<void> {
  const headers = securityHeaders(config);
  app.addHook('onRequest', async (_request, reply) => {
    reply.headers(headers);
  });

  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? [...config.corsOrigins] : false,
    credentials: true,
    exposedHeaders: ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
  });

  await app.register(rateLimit, {
    global: true,
    timeWindow: 60_000,
    // Limits hold across replicas when Redis is there; if Redis fails, serve rather than 5xx.
    ...(redis ? { redis, nameSpace: 'cairn:ratelimit:', skipOnError: true } : {}),
    keyGenerator: (request) => {
      const auth = request.authContext;
      if (auth) return auth.sessionId ? `s:${auth.sessionId}` : `t:${auth.tokenId ?? auth.actor.id}`;
      return `ip:${request.ip}`;
    },
    max: (request) => (request.authContext ? config.rateLimitAuthenticated : config.rateLimitAnonymous),
    errorResponseBuilder: (_request, context) =>
      new TooManyRequestsError(
        `Rate limit of ${context.max} requests per minute exceeded; retry in ${Math.ceil(context.ttl / 1000)} s.`,
        Math.ceil(context.ttl / 1000),
      ),
  });

  await app.register(compress, { threshold: 1024, encodings: ['gzip', 'deflate'] });

  if (config.maxEventLoopDelayMs > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: config.maxEventLoopDelayMs,
      // Sample often enough that a saturated loop is noticed within a fraction of a second.
      sampleInterval: 200,
      retryAfter: 5,
      exposeStatusRoute: false,
      // A handler that does not reply lets the request through (Fastify skips the route
      // once a hook has replied). Probes and metrics always answer: an orchestrator that
      // sees a busy replica's liveness probe fail would restart it, turning a load spike
      // into an outage.
      pressureHandler: (request, reply, type, value) => {
        if (PROBE_URL.test(request.url)) return;
        reply.header('retry-after', '5');
        void sendProblem(reply, request, {
          status: 503,
          code: 'overloaded',
          title: 'Service unavailable',
          detail: `The server is overloaded (${type}${value !== undefined ? ` ${value}` : ''}); retry shortly.`,
        });
      },
    });
  }
}

/**
 * Helmet's headers for our configuration. They do not depend on the request, so they are
 * computed once here (by running helmet against a recording response) and set from a
 * constant on every reply; @fastify/helmet rebuilds helmet's middleware per request.
 */
export function securityHeaders(config: Pick<Config, 'trustProxy'>): Record<string, string> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet({
    // HSTS only means something over TLS, which a proxy in front terminates.
    strictTransportSecurity: config.trustProxy ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    xFrameOptions: { action: 'deny' },
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        // The API docs page (/docs) runs Swagger UI's inline bootstrap.
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        frameAncestors: ["'none'"],
        upgradeInsecureRequests: config.trustProxy ? [] : null,
      },
    },
  })({} as never, recorder as never, () => {});
  return headers;
}
