// Short-lived, single-use tickets for clients that cannot send an Authorization header
// (a browser's WebSocket or EventSource): POST /api/v1/ws/ticket with the header, then put
// the ticket in the stream's URL. A ticket in a log line is useless 30 s later, or once used.
//
// The ticket stands for the credential it was made with, which is re-checked when it is
// redeemed (a revoked session's tickets fail). The cache (Redis when configured, so any
// replica can redeem it) holds that credential encrypted with a key derived from the
// ticket, under the ticket's hash: the cache alone reveals nothing usable.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { createMemoryCache, type Cache } from '../../platform/cache.js';

export const TICKET_TTL_MS = 30_000;
const TICKET = /^[A-Za-z0-9_-]{43}$/;

const cacheKey = (ticket: string) => `ws-ticket:${createHash('sha256').update(ticket).digest('base64url')}`;
const keyOf = (ticket: string) => Buffer.from(hkdfSync('sha256', ticket, '', 'cairn stream ticket', 32));

export interface TicketStore {
  issue(authorization: string): Promise<{ ticket: string; expires_at: string }>;
  /** The credential the ticket stands for, once; null for an unknown, expired or used ticket. */
  redeem(ticket: string): Promise<string | null>;
}

/** While the shared cache is unreachable, tickets live in this process (redeemable on this replica only). */
export function createTicketStore(shared: Cache, local: Cache = createMemoryCache(10_000)): TicketStore {
  return {
    async issue(authorization) {
      const ticket = randomBytes(32).toString('base64url');
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', keyOf(ticket), iv);
      const sealed = Buffer.concat([cipher.update(authorization, 'utf8'), cipher.final()]);
      const value = Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
      await shared.set(cacheKey(ticket), value, TICKET_TTL_MS).catch(() => local.set(cacheKey(ticket), value, TICKET_TTL_MS));
      return { ticket, expires_at: new Date(Date.now() + TICKET_TTL_MS).toISOString() };
    },
    async redeem(ticket) {
      if (!TICKET.test(ticket)) return null;
      const key = cacheKey(ticket);
      const value = (await shared.take(key).catch(() => undefined)) ?? (await local.take(key));
      if (!value) return null;
      try {
        const raw = Buffer.from(value, 'base64url');
        const decipher = createDecipheriv('aes-256-gcm', keyOf(ticket), raw.subarray(0, 12));
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      } catch {
        return null;
      }
    },
  };
}
