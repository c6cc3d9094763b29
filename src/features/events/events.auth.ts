// Streams authenticate exactly like REST (the same authenticator, so revoked or expired
// credentials fail the same way), from whichever of three places the client could use:
// an Authorization header, a `bearer.<token>` WebSocket subprotocol (browsers cannot set
// headers on a WebSocket), or a single-use ticket. Never a long-lived token in the URL.
import type { AuthContext } from '../../platform/auth.js';
import { UnauthorizedError } from '../../platform/errors.js';
import type { Authenticator } from '../auth/authenticate.js';
import type { TicketStore } from './events.tickets.js';

export interface StreamCredentials {
  authorization?: string | undefined;
  bearerProtocol?: string | undefined;
  ticket?: string | undefined;
}

export async function authenticateStream(
  deps: { authenticator: Authenticator; tickets: TicketStore },
  credentials: StreamCredentials,
  meta: { requestId: string; clientIp: string | null },
): Promise<AuthContext> {
  let header = credentials.authorization ?? (credentials.bearerProtocol ? `Bearer ${credentials.bearerProtocol}` : undefined);
  if (!header && credentials.ticket !== undefined) {
    header = (await deps.tickets.redeem(credentials.ticket)) ?? undefined;
    if (!header) {
      throw new UnauthorizedError(
        'The ticket is unknown, expired or already used; get a new one from POST /api/v1/ws/ticket.',
        'invalid_ticket',
      );
    }
  }
  if (!header) {
    throw new UnauthorizedError(
      'Authenticate with "Authorization: Bearer <token>", the "bearer.<token>" WebSocket subprotocol, or a ticket from POST /api/v1/ws/ticket.',
    );
  }
  return deps.authenticator.authenticate(header, meta);
}
