// Authentication and authorization for every route, in one place. Each route must declare
// `config.permission` ('public', 'authenticated', or a Permission); a route that forgets
// fails at startup, so no endpoint can ship unguarded.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthContext, Permission } from '../auth.js';
import { AppError, ForbiddenError, UnauthorizedError } from '../errors.js';
import type { Authenticator } from '../../features/auth/authenticate.js';

export type RouteAccess = 'public' | 'authenticated' | Permission;

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: RouteAccess;
  }
  interface FastifyRequest {
    /** Set when the request carried valid credentials. */
    authContext: AuthContext | null;
    authError: AppError | null;
  }
}

/** The caller, for handlers of non-public routes (the guard has already checked it). */
export function authOf(request: FastifyRequest): AuthContext {
  if (!request.authContext) throw new UnauthorizedError();
  return request.authContext;
}

export function registerAuthGuard(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('authContext', null);
  app.decorateRequest('authError', null);

  app.addHook('onRoute', (route) => {
    // HEAD routes share their GET route's config; CORS preflight (OPTIONS) carries no
    // credentials by design; the docs UI's static assets are public.
    const methods = [route.method].flat();
    if (methods.every((m) => m === 'HEAD' || m === 'OPTIONS') || route.url.startsWith('/docs')) return;
    const access = route.config?.permission;
    if (!access) throw new Error(`route ${String(route.method)} ${route.url} declares no config.permission`);
  });

  // Credentials are resolved before rate limiting (which keys on the caller), but a bad
  // credential only fails the request once the route's guard runs, so it is still counted.
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (!header) return;
    try {
      request.authContext = await authenticator.authenticate(header, { requestId: request.id, clientIp: request.ip });
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      request.authError = error;
    }
  });

  // preParsing: after rate limiting, before the body is read, so an unauthenticated
  // caller learns nothing from validation errors and costs no parsing.
  app.addHook('preParsing', async (request, _reply, payload) => {
    guard(request);
    return payload;
  });
}

function guard(request: FastifyRequest): void {
  {
    const access = request.routeOptions.config.permission;
    if (!access || access === 'public') return;
    if (request.authError) throw request.authError;
    const auth = request.authContext;
    if (!auth) throw new UnauthorizedError();
    if (access !== 'authenticated' && !auth.permissions.has(access)) {
      throw new ForbiddenError(`This needs the "${access}" permission, which your ${auth.tokenId ? 'token' : 'role'} lacks.`);
    }
  }
}
