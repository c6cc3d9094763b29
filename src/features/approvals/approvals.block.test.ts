// Block steps through the run engine: a run waits, blocked, until people answer; the answer
// (or the expiry) moves it on at once, and the answer's input reaches later steps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { addUser, type TestUser } from '../../../test/helpers/auth.js';
import { commandStep } from '../../../test/helpers/pipelines.js';
import { runsFixture } from '../../../test/helpers/runs.js';
import { claim, report, type TestAgent } from '../../../test/helpers/queue.js';
import type { AuthContext } from '../../platform/auth.js';
import type { BlockStep, PipelineDefinition, StepDefinition } from '../pipelines/pipeline.model.js';
import { cancelRun, createRun, getRun } from '../runs/runs.service.js';
import { expireDueApprovals } from './approvals.service.js';
import type { ApprovalView } from './approvals.views.js';

let t: TestApp;
let owner: TestUser;
let member: TestUser;
let viewer: TestUser;
let auth: AuthContext;
let agent: TestAgent;
let projectId: string;

beforeAll(async () => {
  ({ t, owner, auth, agent, projectId } = await runsFixture('Gated'));
  [member, viewer] = await Promise.all([addUser(t, owner, 'member'), addUser(t, owner, 'viewer')]);
});
afterAll(() => t.close());

const command = (key: string, needs: string[] = []) => commandStep(key, { needs });

const block = (key: string, needs: string[], extra: Partial<BlockStep> = {}): StepDefinition => ({
  type: 'block',
  key,
  label: `Gate ${key}`,
  needs,
  prompt: 'Release?',
  fields: [
    { key: 'release_notes', type: 'text', required: true },
    { key: 'channel', type: 'select', options: ['stable', 'beta'], default: 'stable' },
  ],
  allowed_roles: [],
  allowed_users: [],
  on_expiry: 'fail',
  ...extra,
});

const pipeline = (...steps: StepDefinition[]): PipelineDefinition => ({ env: {}, steps });
const start = (definition: PipelineDefinition) =>
  createRun(t.deps, auth, { projectId, pipelineVersionId: null, definition, trigger: { branch: 'main' } });

/** Plays the agent: claims the step's job and completes it; waits for the engine. */
async function finishStep(runId: string, key: string) {
  const jobId = (await getRun(t.deps, auth, runId)).steps.find((s) => s.key === key)!.job_id!;
  const job = (await claim(t, agent, 8)).find((j) => j.id === jobId);
  expect(job, `job of ${key} claimable`).toBeDefined();
  await report(t, agent, job!, 'complete');
  await t.deps.runs.idle();
  return job!;
}

const step = async (runId: string, key: string) => (await getRun(t.deps, auth, runId)).steps.find((s) => s.key === key)!;

/** The run waits at its gate: blocked, what needs the gate waiting, no job to claim. */
async function expectHeldAtGate(runId: string) {
  const run = await getRun(t.deps, auth, runId);
  expect(run.state).toBe('blocked');
  expect(run.steps.find((s) => s.key === 'gate')!.state).toBe('blocked');
  expect(run.steps.filter((s) => s.key !== 'gate').every((s) => s.state === 'waiting' || s.state === 'passed')).toBe(true);
  expect(await claim(t, agent, 8)).toEqual([]);
}

async function answer(as: TestUser, approvalId: string, payload: Record<string, unknown>) {
  const res = await t.app.inject({
    method: 'POST',
    url: `/api/v1/approvals/${approvalId}/respond`,
    headers: as.headers,
    payload,
  });
  await t.deps.runs.idle();
  return res;
}

describe('block steps', () => {
  it('the run stays blocked until someone approves; then the next job is queued with the answer as outputs', async () => {
    const run = await start(pipeline(command('build'), block('gate', ['build']), command('ship', ['gate'])));
    await finishStep(run.id, 'build');
    const gate = await step(run.id, 'gate');
    expect(gate).toMatchObject({ state: 'blocked', approval_id: expect.any(String) });
    await expectHeldAtGate(run.id);

    const approval = (
      await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${gate.approval_id}`, headers: member.headers })
    ).json<ApprovalView>();
    expect(approval).toMatchObject({
      subject: { type: 'run_step', run_id: run.id, step_key: 'gate' },
      question: 'Release?',
      allowed_roles: ['owner', 'admin', 'member'],
      can_respond: true,
    });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'approval.requested', resourceId: gate.approval_id! });

    // A viewer cannot unblock it; a missing required field leaves it blocked.
    expect((await answer(viewer, gate.approval_id!, { decision: 'approve', input: { release_notes: 'x' } })).statusCode).toBe(
      403,
    );
    expect((await answer(member, gate.approval_id!, { decision: 'approve' })).statusCode).toBe(400);
    await expectHeldAtGate(run.id);

    const ok = await answer(member, gate.approval_id!, { decision: 'approve', input: { release_notes: 'Faster builds' } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(await step(run.id, 'gate')).toMatchObject({ state: 'passed' });
    expect((await getRun(t.deps, auth, run.id)).state).toBe('running');
    const outputs = await t.app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}/outputs`, headers: owner.headers });
    expect(outputs.json().items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ step_key: 'gate', key: 'release_notes', value: 'Faster builds' }),
        expect.objectContaining({ step_key: 'gate', key: 'channel', value: 'stable' }),
      ]),
    );

    const ship = await finishStep(run.id, 'ship');
    expect(ship.env).toMatchObject({ CAIRN_OUTPUT_GATE_RELEASE_NOTES: 'Faster builds', CAIRN_OUTPUT_GATE_CHANNEL: 'stable' });
    expect((await getRun(t.deps, auth, run.id)).state).toBe('passed');
  });

  it('a rejection fails the step and the run; what needed it is skipped', async () => {
    const run = await start(pipeline(block('gate', []), command('ship', ['gate'])));
    const gate = await step(run.id, 'gate');
    await expectHeldAtGate(run.id);
    const res = await answer(owner, gate.approval_id!, { decision: 'reject', comment: 'not on a Friday' });
    expect(res.statusCode, res.body).toBe(200);
    const done = await getRun(t.deps, auth, run.id);
    expect(done.state).toBe('failed');
    expect(done.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['gate:failed', 'ship:skipped']);
    expect(done.steps[0]!.reason).toBe(`rejected by ${owner.email}: not on a Friday`);
  });

  it('an expiry passes the step with on_expiry: continue, and fails it with fail', async () => {
    const go = await start(
      pipeline(block('gate', [], { expires_in_seconds: 3600, on_expiry: 'continue' }), command('next', ['gate'])),
    );
    const stop = await start(pipeline(block('gate', [], { expires_in_seconds: 3600 }), command('next', ['gate'])));
    await t.deps.db.query("UPDATE approvals SET expires_at = now() - interval '1 second' WHERE run_id = ANY($1)", [
      [go.id, stop.id],
    ]);
    expect(await expireDueApprovals(t.deps)).toBe(2);
    await t.deps.runs.idle();
    expect(await step(go.id, 'gate')).toMatchObject({ state: 'passed', reason: 'approval expired (on_expiry: continue)' });
    expect((await step(go.id, 'next')).state).toBe('running');
    await finishStep(go.id, 'next');
    expect((await getRun(t.deps, auth, go.id)).state).toBe('passed');
    expect((await getRun(t.deps, auth, stop.id)).state).toBe('failed');
    expect(await step(stop.id, 'gate')).toMatchObject({ state: 'failed', reason: 'approval expired' });
  });

  it('only the people a step names may answer; a name that is not a member fails the step', async () => {
    const run = await start(pipeline(block('gate', [], { allowed_users: [member.email], fields: [] })));
    const gate = await step(run.id, 'gate');
    expect((await getRun(t.deps, auth, run.id)).state).toBe('blocked');
    expect((await answer(owner, gate.approval_id!, { decision: 'approve' })).statusCode).toBe(403);
    expect((await getRun(t.deps, auth, run.id)).state).toBe('blocked');
    expect((await answer(member, gate.approval_id!, { decision: 'approve' })).statusCode).toBe(200);
    expect((await getRun(t.deps, auth, run.id)).state).toBe('passed');

    const typo = await start(pipeline(block('gate', [], { allowed_users: ['nobody@example.test'] })));
    expect(typo.state).toBe('failed');
    expect((await step(typo.id, 'gate')).reason).toContain('nobody@example.test');
  });

  it('canceling the run withdraws its pending approval', async () => {
    const run = await start(pipeline(block('gate', [])));
    const gate = await step(run.id, 'gate');
    await cancelRun(t.deps, auth, run.id);
    const approval = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${gate.approval_id}`, headers: owner.headers });
    expect(approval.json()).toMatchObject({ state: 'canceled' });
    expect((await answer(owner, gate.approval_id!, { decision: 'approve', input: { release_notes: 'x' } })).statusCode).toBe(409);
    expect((await getRun(t.deps, auth, run.id)).state).toBe('canceled');
  });
});
