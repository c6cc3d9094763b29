// Open streams per user and per client IP, counted on this replica (WebSocket and SSE
// together). A limit held across replicas would need a shared counter that survives a
// replica's crash; per-replica limits behind a balancer bound the same abuse well enough.
import type { AuthContext } from '../../platform/auth.js';

export interface LimitSettings {
  perUser: number;
  perIp: number;
}

/** One person's streams count together whether they use sessions or API tokens; an agent counts as itself. */
export const streamOwner = (auth: AuthContext): string => auth.userId ?? `${auth.actor.type}:${auth.actor.id}`;

export class ConnectionLimits {
  private readonly byUser = new Map<string, number>();
  private readonly byIp = new Map<string, number>();

  constructor(private readonly settings: LimitSettings) {}

  /** Why a new stream would be refused, or null. */
  refusal(ip: string, auth?: AuthContext): string | null {
    if ((this.byIp.get(ip) ?? 0) >= this.settings.perIp) {
      return `This address has ${this.settings.perIp} open event streams, the most allowed.`;
    }
    if (auth && (this.byUser.get(streamOwner(auth)) ?? 0) >= this.settings.perUser) {
      return `You have ${this.settings.perUser} open event streams, the most allowed; close one first.`;
    }
    return null;
  }

  /** Counts a stream in; the returned function counts it out (once, however often it is called). */
  admit(ip: string, auth: AuthContext): () => void {
    const owner = streamOwner(auth);
    add(this.byIp, ip, 1);
    add(this.byUser, owner, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      add(this.byIp, ip, -1);
      add(this.byUser, owner, -1);
    };
  }
}

function add(map: Map<string, number>, key: string, delta: number): void {
  const next = (map.get(key) ?? 0) + delta;
  if (next > 0) map.set(key, next);
  else map.delete(key);
}
