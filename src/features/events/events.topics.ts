// The topic registry: how a client names a topic, who may subscribe to it, and which of an
// organization's events it carries. Features plug their topics in with registerTopicKind
// (see README.md); the streams never learn feature names. Every event is published once on
// `org:<orgId>`; `routes()` maps it to the client topics it belongs to, by the ids in its data.
import type { AuthContext, Permission } from '../../platform/auth.js';
import { LIVE_ONLY_TYPES, type BusEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';

export type TopicAccess = Permission | 'authenticated';

export interface TopicKind {
  /** `project` → topics `project:<id>`; a kind without `exists` takes no id (topic `agents`). */
  name: string;
  /** A second topic on the same resource: `log` → `job:<id>:log`. */
  suffix?: string;
  /** What a subscriber needs: the permission of the matching REST read. */
  permission: TopicAccess;
  /**
   * Whether the resource exists in the caller's organization. Answer false alike for a
   * missing id and another organization's id: the client gets one answer for both.
   */
  exists?: (db: Queryable, orgId: string, id: string) => Promise<boolean>;
  /** Ids of the resource the event concerns (default: `data.<name>_id`). */
  ids?: (data: Record<string, unknown>) => unknown;
  /** Which ids are well-formed (default: UUID); others are refused before `exists` runs. */
  idPattern?: RegExp;
  /** Event types the topic carries: exact types, or prefixes ending in `.` (default: all but live-only types). */
  types?: readonly string[];
  /** Event types (same forms) the kind's feature publishes: seeing them on any topic needs `permission`. */
  owns?: readonly string[];
  /** Per-subscriber filter on top of the permission, e.g. approvals "waiting for me". */
  visibleTo?: (event: BusEvent, auth: AuthContext) => boolean;
  /** False for topics that cannot resume from an event id (live-only logs): a resume gets `resync`. */
  resumable?: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAME = /^[a-z][a-z_]{0,30}$/;
/** Topics the streams serve themselves (the ledger's checkpoints are not organization events). */
export const RESERVED_TOPICS = new Set(['ledger']);

export interface ParsedTopic {
  kind: TopicKind;
  id: string | null;
}

const matchesType = (patterns: readonly string[], type: string) =>
  patterns.some((p) => (p.endsWith('.') ? type.startsWith(p) : type === p));

export const topicName = (kind: TopicKind, id: string | null): string =>
  [kind.name, ...(id === null ? [] : [id]), ...(kind.suffix ? [kind.suffix] : [])].join(':');

export class TopicRegistry {
  private kinds = new Map<string, TopicKind>();
  private families: { owns: readonly string[]; permission: TopicAccess }[] = [];
  private permissionCache = new Map<string, TopicAccess | null>();

  /** Registering the same kind object again is a no-op (apps built twice in one process); a different one under a taken name is a bug. */
  register(...kinds: TopicKind[]): void {
    for (const kind of kinds) {
      const key = kind.suffix ? `${kind.name}:*:${kind.suffix}` : kind.name;
      const existing = this.kinds.get(key);
      if (existing === kind) continue;
      if (existing) throw new Error(`topic kind "${key}" is already registered`);
      if (!NAME.test(kind.name) || (kind.suffix && !NAME.test(kind.suffix)) || RESERVED_TOPICS.has(kind.name)) {
        throw new Error(`"${key}" is not a usable topic kind name`);
      }
      if (kind.suffix && !kind.exists) throw new Error(`topic kind "${key}" has a suffix, so it needs an id and exists()`);
      this.kinds.set(key, kind);
      if (kind.owns) this.registerEventTypes(kind.owns, kind.permission);
    }
  }

  /** For event types that have no topic of their own (deployments, artifacts): who may see them on `org` and `project:<id>`. */
  registerEventTypes(owns: readonly string[], permission: TopicAccess): void {
    this.families.push({ owns, permission });
    this.permissionCache.clear();
  }

  /** The permission an event type needs, or null when no kind claims it: such events reach no client (fail closed). */
  permissionFor(type: string): TopicAccess | null {
    let access = this.permissionCache.get(type);
    if (access === undefined) {
      access = this.families.find((f) => matchesType(f.owns, type))?.permission ?? null;
      this.permissionCache.set(type, access);
    }
    return access;
  }

  /** `project:<id>`, `job:<id>:log`, `agents`; null when no registered kind has that shape. */
  parse(topic: string): ParsedTopic | null {
    const parts = topic.split(':');
    if (parts.length > 3) return null;
    const [name = '', id, suffix] = parts;
    const kind = this.kinds.get(suffix !== undefined ? `${name}:*:${suffix}` : name);
    if (!kind) return null;
    if (!kind.exists) return id === undefined ? { kind, id: null } : null;
    if (id === undefined || !(kind.idPattern ?? UUID).test(id)) return null;
    return { kind, id: kind.idPattern ? id : id.toLowerCase() };
  }

  /** The client topics an organization event belongs to. */
  routes(event: BusEvent): string[] {
    const data = (event.data ?? {}) as Record<string, unknown>;
    const topics: string[] = [];
    for (const kind of this.kinds.values()) {
      if (kind.types ? !matchesType(kind.types, event.type) : LIVE_ONLY_TYPES.has(event.type)) continue;
      if (!kind.exists) {
        topics.push(kind.name);
        continue;
      }
      const ids = kind.ids ? kind.ids(data) : data[`${kind.name}_id`];
      for (const id of Array.isArray(ids) ? (ids as unknown[]) : [ids]) {
        if (typeof id === 'string' && id !== '') topics.push(topicName(kind, id));
      }
    }
    return topics;
  }

  names(): string[] {
    return [...this.kinds.values()].map((k) => topicName(k, k.exists ? '<id>' : null)).concat([...RESERVED_TOPICS]);
  }
}

export function allows(auth: AuthContext, access: TopicAccess): boolean {
  return access === 'authenticated' || auth.permissions.has(access);
}

/** The registry the app uses; features call registerTopicKind at start-up (see README.md). */
export const topicRegistry = new TopicRegistry();

export function registerTopicKind(...kinds: TopicKind[]): void {
  topicRegistry.register(...kinds);
}
