// Who this agent is to the server. Registration (with the pool's registration token)
// answers an agent id and token, kept in <work-dir>/agent.json (mode 0600) so that an
// agent restarted after a crash is the same agent: its leases and its outbox's reports
// still count. A clean stop deregisters and deletes the file (see README.md).
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { agentApi, registerAgent, type Registration } from '../client/agent-api.js';
import { ApiError } from '../client/api-request.js';

export interface StoredIdentity {
  agent_id: string;
  token: string;
  url: string;
  name: string;
  pool: string;
  tags: Record<string, string>;
  concurrency: number;
  registered_at: string;
}

export interface RegistrationWish {
  url: string;
  registrationToken?: string;
  pool?: string;
  name: string;
  tags: Record<string, string>;
  concurrency: number;
  version: string;
}

/** A problem only a person can fix (bad token, wrong pool): the agent exits with status 2. */
export class AgentSetupError extends Error {
  override name = 'AgentSetupError';
}

export const identityFile = (workDir: string) => path.join(workDir, 'agent.json');

export async function loadIdentity(workDir: string): Promise<StoredIdentity | undefined> {
  try {
    const stored = JSON.parse(await readFile(identityFile(workDir), 'utf8')) as StoredIdentity;
    return stored.agent_id && stored.token ? stored : undefined;
  } catch {
    return undefined;
  }
}

export async function saveIdentity(workDir: string, identity: StoredIdentity): Promise<void> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const file = identityFile(workDir);
  const temporary = `${file}.tmp`;
  const handle = await open(temporary, 'w', 0o600); // the token is a credential
  try {
    await handle.writeFile(`${JSON.stringify(identity, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}

export async function forgetIdentity(workDir: string): Promise<void> {
  await unlink(identityFile(workDir)).catch(() => {});
}

const sameTags = (a: Record<string, string>, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** A stored identity is reused only for the same server, name, tags, concurrency and pool. */
export function identityFits(stored: StoredIdentity, wish: RegistrationWish): boolean {
  return (
    stored.url === wish.url &&
    stored.name === wish.name &&
    stored.concurrency === wish.concurrency &&
    sameTags(stored.tags, wish.tags) &&
    (wish.pool === undefined || wish.pool === stored.pool)
  );
}

/** Registers with the registration token; refuses a token of another pool than --pool. */
export async function register(wish: RegistrationWish): Promise<{ identity: StoredIdentity; registration: Registration }> {
  if (!wish.registrationToken) {
    throw new AgentSetupError('no registration token: pass --token <registration token> (or set CAIRN_AGENT_TOKEN)');
  }
  let registration: Registration;
  try {
    registration = await registerAgent(
      { baseUrl: wish.url, token: wish.registrationToken },
      {
        name: wish.name,
        hostname: os.hostname(),
        version: wish.version,
        os: `${os.platform()}-${os.arch()}`,
        tags: wish.tags,
        max_concurrency: wish.concurrency,
      },
    );
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      throw new AgentSetupError(`the server refused the registration token (${error.status} ${error.code})`);
    }
    if (error instanceof ApiError && error.status === 400) throw new AgentSetupError(`registration refused: ${error.detail}`);
    throw error;
  }
  if (wish.pool !== undefined && registration.agent.pool !== wish.pool) {
    // A registration token belongs to one pool; undo the registration it made elsewhere.
    await agentApi({ baseUrl: wish.url, token: registration.token })
      .deregister(registration.agent.id, 10_000)
      .catch(() => {});
    throw new AgentSetupError(`the registration token belongs to pool "${registration.agent.pool}", not "${wish.pool}" (--pool)`);
  }
  const identity: StoredIdentity = {
    agent_id: registration.agent.id,
    token: registration.token,
    url: wish.url,
    name: wish.name,
    pool: registration.agent.pool,
    tags: wish.tags,
    concurrency: wish.concurrency,
    registered_at: new Date().toISOString(),
  };
  return { identity, registration };
}
