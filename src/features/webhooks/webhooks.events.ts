// What a verified GitHub or GitLab delivery asks for: a run (branch, commit, message), a
// pong, or nothing. Payloads are read exactly as the providers send them; a field a run
// needs that is missing or of the wrong type is a 400 naming it.
import { BadRequestError } from '../../platform/errors.js';

export type Provider = 'github' | 'gitlab';

export type HookDecision =
  | { kind: 'run'; event: string; action: string | null; branch: string; commit: string; message: string | null }
  | { kind: 'ignore'; event: string; action: string | null; reason: string }
  | { kind: 'pong'; event: string; action: null; zen: string | null };

type Json = Record<string, unknown>;

const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/; // SHA-1, or SHA-256 object names
const ZERO = /^0+$/;

function field(payload: unknown, path: string): unknown {
  let value: unknown = payload;
  for (const key of path.split('.')) {
    value = value && typeof value === 'object' && !Array.isArray(value) ? (value as Json)[key] : undefined;
  }
  return value;
}

function text(payload: unknown, path: string, what: string, max = 10_000): string {
  const value = field(payload, path);
  if (typeof value !== 'string' || value.length === 0 || value.length > max || value.includes('\u0000')) {
    throw new BadRequestError(`The ${what} payload has no valid "${path}".`, 'malformed_payload', { field: path });
  }
  return value;
}

function optionalText(payload: unknown, path: string): string | null {
  const value = field(payload, path);
  // PostgreSQL text cannot hold NUL; a commit message is kept without it.
  return typeof value === 'string' ? value.replaceAll('\u0000', '').slice(0, 10_000) : null;
}

function commitOf(payload: unknown, path: string, what: string): string {
  const value = text(payload, path, what, 64);
  if (!COMMIT.test(value)) throw new BadRequestError(`"${path}" is not a commit id.`, 'malformed_payload', { field: path });
  return value;
}

/** `refs/heads/<branch>` → branch; anything else (tags) → null. */
function branchOf(ref: string): string | null {
  if (!ref.startsWith('refs/heads/')) return null;
  const branch = ref.slice('refs/heads/'.length);
  return branch.length > 0 && branch.length <= 255 ? branch : null;
}

function requireObject(payload: unknown, what: string): Json {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new BadRequestError(`The ${what} payload is not a JSON object.`, 'malformed_payload');
  }
  return payload as Json;
}

const GITHUB_PR_ACTIONS = ['opened', 'synchronize', 'reopened'];

export function decideGithub(event: string, body: unknown): HookDecision {
  const payload = requireObject(body, event);
  if (event === 'ping') return { kind: 'pong', event, action: null, zen: optionalText(payload, 'zen') };
  if (event === 'push') {
    const ref = text(payload, 'ref', 'push', 1024);
    const after = commitOf(payload, 'after', 'push');
    const branch = branchOf(ref);
    if (field(payload, 'deleted') === true || ZERO.test(after)) {
      return { kind: 'ignore', event, action: null, reason: 'a deleted branch or tag starts no run' };
    }
    if (!branch) return { kind: 'ignore', event, action: null, reason: `only branch pushes start runs (${ref})` };
    return { kind: 'run', event, action: null, branch, commit: after, message: optionalText(payload, 'head_commit.message') };
  }
  if (event === 'pull_request') {
    const action = text(payload, 'action', 'pull_request', 100);
    if (!GITHUB_PR_ACTIONS.includes(action)) {
      return { kind: 'ignore', event, action, reason: `pull request action "${action}" starts no run` };
    }
    const branch = text(payload, 'pull_request.head.ref', 'pull_request', 255);
    const commit = commitOf(payload, 'pull_request.head.sha', 'pull_request');
    return { kind: 'run', event, action, branch, commit, message: optionalText(payload, 'pull_request.title') };
  }
  return {
    kind: 'ignore',
    event,
    action: optionalText(payload, 'action'),
    reason: `event "${event}" starts no run (push and pull_request do)`,
  };
}

const GITLAB_MR_ACTIONS = ['open', 'reopen', 'update'];

export function decideGitlab(event: string, body: unknown): HookDecision {
  const payload = requireObject(body, event);
  if (event === 'Push Hook') {
    const ref = text(payload, 'ref', 'push', 1024);
    const checkout = field(payload, 'checkout_sha');
    const after = optionalText(payload, 'after');
    // A deleted branch comes with checkout_sha null and after all zeros.
    if (checkout === null || (after !== null && ZERO.test(after))) {
      return { kind: 'ignore', event, action: null, reason: 'a deleted branch starts no run' };
    }
    const commit = commitOf(payload, 'checkout_sha', 'push');
    const branch = branchOf(ref);
    if (!branch) return { kind: 'ignore', event, action: null, reason: `only branch pushes start runs (${ref})` };
    const commits = field(payload, 'commits');
    const head = Array.isArray(commits) ? (commits as unknown[]).find((c) => field(c, 'id') === commit) : undefined;
    return { kind: 'run', event: 'push', action: null, branch, commit, message: optionalText(head, 'message') };
  }
  if (event === 'Merge Request Hook') {
    const action = text(payload, 'object_attributes.action', 'merge request', 100);
    if (!GITLAB_MR_ACTIONS.includes(action)) {
      return { kind: 'ignore', event, action, reason: `merge request action "${action}" starts no run` };
    }
    // GitLab sends "update" for edits of the title or labels too; only new commits carry oldrev.
    if (action === 'update' && typeof field(payload, 'object_attributes.oldrev') !== 'string') {
      return { kind: 'ignore', event, action, reason: 'a merge request update without new commits starts no run' };
    }
    const branch = text(payload, 'object_attributes.source_branch', 'merge request', 255);
    const commit = commitOf(payload, 'object_attributes.last_commit.id', 'merge request');
    // One event name for GitHub pull requests and GitLab merge requests, so pipeline
    // conditions (`if: event == "pull_request"`) read the same for both.
    return {
      kind: 'run',
      event: 'pull_request',
      action,
      branch,
      commit,
      message: optionalText(payload, 'object_attributes.title'),
    };
  }
  return {
    kind: 'ignore',
    event,
    action: optionalText(payload, 'object_attributes.action'),
    reason: `event "${event}" starts no run (Push Hook and Merge Request Hook do)`,
  };
}

/** The JSON of a GitHub delivery, sent as `application/json` or as a form field `payload`. */
export function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  let text = raw.toString('utf8');
  if ((contentType ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new BadRequestError('The form has no "payload" field.', 'malformed_payload');
    text = payload;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BadRequestError('The payload is not valid JSON.', 'malformed_payload');
  }
}
