// A pipeline run end to end by real `cairn agent` processes on a real server: step 1
// hands a value and a file to step 3, a block step waits for a person in between; the run
// stays blocked until someone approves, then finishes; a rejection fails it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startServer, type E2eAgent, type E2eServer } from '../agent/harness.js';
import { stepOf, waitForRun, type RunView as Run } from './runs.js';

const PIPELINE = `
steps:
  - key: build
    agents: { pool: e2e }
    commands:
      - mkdir -p dist && echo "v1.$CAIRN_RUN_NUMBER-$CAIRN_COMMIT" > dist/version.txt
      - cairn step output set version "$(cat dist/version.txt)"
    artifact_paths: "dist/version.txt"

  - key: approve
    block: Release it?
    needs: build
    fields:
      - { key: notes, required: true }

  - key: release
    needs: approve
    agents: { pool: e2e }
    commands:
      - test "$CAIRN_OUTPUT_BUILD_VERSION" = "$(cairn step output get version --step build)"
      - cairn step artifact download dist/version.txt --step build --to fetched
      - test "$(cat fetched/dist/version.txt)" = "$CAIRN_OUTPUT_BUILD_VERSION"
      - echo "released $CAIRN_OUTPUT_BUILD_VERSION with notes '$CAIRN_OUTPUT_APPROVE_NOTES'"
`;

let server: E2eServer;
let agents: E2eAgent[] = [];
let projectId: string;

beforeAll(async () => {
  server = await startServer();
  const pool = await server.createPool('e2e');
  agents = await Promise.all([startAgent(server, pool, { name: 'one' }), startAgent(server, pool, { name: 'two' })]);
  const project = await server.api<{ id: string }>('POST', '/api/v1/projects', { name: 'Release train' });
  projectId = project.body.id;
  const uploaded = await server.api('PUT', `/api/v1/projects/${projectId}/pipeline`, { source: PIPELINE });
  expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(200);
}, 120_000);
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.close();
});

async function trigger(commit: string): Promise<Run> {
  const res = await server.api<Run>('POST', `/api/v1/projects/${projectId}/runs`, { branch: 'main', commit });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const runWhen = (id: string, done: (run: Run) => boolean, what: string) => waitForRun(server, id, done, what);
const step = stepOf;

describe('a pipeline run by real agents', () => {
  it('hands a value and a file from step 1 to step 3 across an approval', async () => {
    const run = await trigger('abc1234');
    const blocked = await runWhen(run.id, (r) => r.state === 'blocked', 'the run to block on its approval');
    expect(blocked.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['build:passed', 'approve:blocked', 'release:waiting']);

    const approval = step(blocked, 'approve').approval_id!;
    const missing = await server.api('POST', `/api/v1/approvals/${approval}/respond`, { decision: 'approve' });
    expect(missing.status).toBe(400); // notes are required
    const answered = await server.api('POST', `/api/v1/approvals/${approval}/respond`, {
      decision: 'approve',
      input: { notes: 'ship it' },
    });
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);

    const passed = await runWhen(run.id, (r) => ['passed', 'failed'].includes(r.state), 'the run to finish');
    expect(passed.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['build:passed', 'approve:passed', 'release:passed']);
    const log = await server.logText(step(passed, 'release').job_id!);
    expect(log).toContain(`released v1.${run.number}-abc1234 with notes 'ship it'`);
    const outputs = await server.api<{ items: { step_key: string; key: string; value: string }[] }>(
      'GET',
      `/api/v1/runs/${run.id}/outputs`,
    );
    expect(outputs.body.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ step_key: 'build', key: 'version', value: `v1.${run.number}-abc1234` }),
        expect.objectContaining({ step_key: 'approve', key: 'notes', value: 'ship it' }),
      ]),
    );
  }, 90_000);

  it('fails the run when the approval is rejected; the release never runs', async () => {
    const run = await trigger('def5678');
    const blocked = await runWhen(run.id, (r) => r.state === 'blocked', 'the run to block on its approval');
    const approval = step(blocked, 'approve').approval_id!;
    const rejected = await server.api('POST', `/api/v1/approvals/${approval}/respond`, {
      decision: 'reject',
      comment: 'not today',
    });
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    const failed = await runWhen(run.id, (r) => ['passed', 'failed'].includes(r.state), 'the run to finish');
    expect(failed.state).toBe('failed');
    expect(failed.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['build:passed', 'approve:failed', 'release:skipped']);
    expect(step(failed, 'release').job_id).toBeNull();
  }, 90_000);
});
