// Who is calling, in which organization, allowed to do what. Resolved once per request
// (platform/http/auth.plugin.ts) from a user access JWT or an API token and handed to
// every service call; services scope every query by `auth.orgId`.

export const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'projects:read',
  'projects:write',
  'members:read',
  'members:write',
  'tokens:write',
  'audit:read',
  'system:read',
  'org:write',
  'jobs:read',
  'jobs:write',
  'agents:read',
  'agents:write',
  'queue:admin',
  'approvals:respond',
  'environments:write',
] as const;

/**
 * Held only by agent principals (an agent's own token, a pool's registration token, a
 * job's token — `job:self` acts on that one job only, e.g. its hand-off outputs); no
 * role has them and no API token can be given them, so a leaked user token cannot pose
 * as an agent and an agent token can do nothing but agent work.
 */
export const AGENT_PERMISSIONS = ['agent:work', 'agent:register', 'job:self'] as const;
export type Permission = (typeof PERMISSIONS)[number] | (typeof AGENT_PERMISSIONS)[number];

const VIEWER: Permission[] = ['projects:read', 'members:read', 'jobs:read', 'agents:read'];
const MEMBER: Permission[] = [...VIEWER, 'projects:write', 'tokens:write', 'jobs:write', 'approvals:respond'];
const ADMIN: Permission[] = [
  ...MEMBER,
  'members:write',
  'audit:read',
  'system:read',
  'agents:write',
  'queue:admin',
  'environments:write',
];
const OWNER: Permission[] = [...ADMIN, 'org:write'];

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  viewer: new Set(VIEWER),
  member: new Set(MEMBER),
  admin: new Set(ADMIN),
  owner: new Set(OWNER),
};

const RANK: Record<Role, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return RANK[role] >= RANK[minimum];
}

export type ActorType = 'user' | 'api_token' | 'agent' | 'system';

export interface Actor {
  type: ActorType;
  id: string;
  /** Human-readable, for audit lists: an email, a token name. */
  label: string;
}

export interface AuthContext {
  orgId: string;
  userId: string | null;
  /** Null for agent principals, which are not members of the organization. */
  role: Role | null;
  permissions: ReadonlySet<Permission>;
  actor: Actor;
  /** Set for user sessions (access JWTs). */
  sessionId?: string;
  /** Set for API tokens. */
  tokenId?: string;
  /** Set for an agent's own token (`cairn_agt_…`). */
  agentId?: string;
  /** Set for agent tokens and pool registration tokens (`cairn_reg_…`). */
  poolId?: string;
  /** Set for a job's own token (`cairn_job_…`), handed to the job's shell by its agent. */
  jobId?: string;
  requestId: string;
  clientIp: string | null;
}

/** For work the server does on its own (bootstrap, leader loops, CLI admin commands). */
export function systemContext(orgId: string, label = 'system', requestId = 'system'): AuthContext {
  return {
    orgId,
    userId: null,
    role: 'owner',
    permissions: ROLE_PERMISSIONS.owner,
    actor: { type: 'system', id: label, label },
    requestId,
    clientIp: null,
  };
}

export function can(auth: AuthContext, permission: Permission): boolean {
  return auth.permissions.has(permission);
}
