import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../../../test/helpers/app.js';
import { runsFixture } from '../../../test/helpers/runs.js';
import { commandStep } from '../../../test/helpers/pipelines.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import type { TestUser } from '../../../test/helpers/auth.js';
import { claim, report, type TestAgent } from '../../../test/helpers/queue.js';
import type { AuthContext } from '../../platform/auth.js';
import type { PipelineDefinition, StepDefinition } from '../pipelines/pipeline.model.js';
import { runStateOf } from './runs.engine.js';
import type { StepRow } from './runs.queries.js';
import { appendSteps, cancelRun, createRun, forceCompleteRun, getRun, retryStep } from './runs.service.js';

let t: TestApp;
let owner: TestUser;
let auth: AuthContext;
let agent: TestAgent;
let projectId: string;

beforeAll(async () => {
  ({ t, owner, auth, agent, projectId } = await runsFixture('Engine'));
});
afterAll(() => t.close());

const command = commandStep;

function pipeline(...steps: StepDefinition[]): PipelineDefinition {
  return { env: { PIPELINE: 'yes' }, steps };
}

const start = (definition: PipelineDefinition, trigger = { branch: 'main' }) =>
  createRun(t.deps, auth, { projectId, pipelineVersionId: null, definition, trigger });

/** Jobs the agent claimed and holds until a test finishes their step. */
const held = new Map<string, Awaited<ReturnType<typeof claim>>[number]>();

/** Plays the agent for `step`'s job: claims, completes; waits for the engine to advance. */
async function finishStep(runId: string, step: string, exitStatus = 0, outputs?: Record<string, string>) {
  const run = await getRun(t.deps, auth, runId);
  const jobId = run.steps.find((s) => s.key === step)!.job_id!;
  if (!held.has(jobId)) for (const job of await claim(t, agent, 8)) held.set(job.id, job);
  const job = held.get(jobId);
  expect(job, `job of ${step} claimable`).toBeDefined();
  held.delete(jobId);
  await report(t, agent, job!, 'complete', { exit_status: exitStatus, ...(outputs ? { outputs } : {}) });
  await t.deps.runs.idle();
  return job!;
}

const states = async (runId: string) =>
  Object.fromEntries((await getRun(t.deps, auth, runId)).steps.map((s) => [s.key, s.state]));

describe('the run engine', () => {
  it('starts roots, then each step once its needs passed; the run passes', async () => {
    const run = await start(
      pipeline(
        command('build'),
        command('lint'),
        command('test', { needs: ['build'] }),
        command('ship', { needs: ['test', 'lint'] }),
      ),
    );
    expect(run.state).toBe('running');
    expect(await states(run.id)).toEqual({ build: 'running', lint: 'running', test: 'waiting', ship: 'waiting' });

    const built = await finishStep(run.id, 'build', 0, { 'image.tag': 'v7' });
    expect(built.env).toMatchObject({ PIPELINE: 'yes', CAIRN_RUN_ID: run.id, CAIRN_STEP_KEY: 'build', CAIRN_BRANCH: 'main' });
    // Outputs reported with the completion are hand-offs: the next job's environment has them.
    const [tested] = await claim(t, agent, 8);
    held.set(tested!.id, tested!);
    expect(tested!.env).toMatchObject({ CAIRN_OUTPUT_BUILD_IMAGE_TAG: 'v7' });
    expect(await states(run.id)).toEqual({ build: 'passed', lint: 'running', test: 'running', ship: 'waiting' });
    await finishStep(run.id, 'test');
    expect((await states(run.id)).ship).toBe('waiting');
    await finishStep(run.id, 'lint');
    expect((await states(run.id)).ship).toBe('running');
    await finishStep(run.id, 'ship');
    const done = await getRun(t.deps, auth, run.id);
    expect(done).toMatchObject({ state: 'passed', complete: true });
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'run.finished', resourceId: run.id });
  });

  it('skips steps by condition (they count as done) and after a failure (they do not)', async () => {
    const run = await start(
      pipeline(
        command('only-release', { if: 'branch =~ /^release\\//' }),
        command('build', { needs: ['only-release'] }),
        command('test', { needs: ['build'] }),
        command('after-test', { needs: ['test'] }),
        command('flaky-lint', { allow_failure: true }),
      ),
    );
    expect(await states(run.id)).toMatchObject({ 'only-release': 'skipped', build: 'running' });
    await finishStep(run.id, 'flaky-lint', 1);
    await finishStep(run.id, 'build');
    await finishStep(run.id, 'test', 2);
    expect(await states(run.id)).toEqual({
      'only-release': 'skipped',
      build: 'passed',
      test: 'failed',
      'after-test': 'skipped',
      'flaky-lint': 'failed',
    });
    expect((await getRun(t.deps, auth, run.id)).state).toBe('failed');

    // Retrying the failed step reopens it and what it skipped.
    const retried = await retryStep(t.deps, auth, run.id, 'test');
    expect(retried.state).toBe('running');
    expect(await states(run.id)).toMatchObject({ test: 'running', 'after-test': 'waiting' });
    await finishStep(run.id, 'test');
    await finishStep(run.id, 'after-test');
    expect((await getRun(t.deps, auth, run.id)).state).toBe('passed');
  });

  it('a concurrency group of 1 never runs two runs’ steps at once', async () => {
    const deploy = () => pipeline(command('deploy', { concurrency_group: 'prod', concurrency: 1 }));
    const first = await start(deploy());
    const second = await start(deploy());
    expect((await getRun(t.deps, auth, first.id)).steps[0]).toMatchObject({ state: 'running' });
    expect((await getRun(t.deps, auth, second.id)).steps[0]).toMatchObject({ state: 'waiting', reason: 'concurrency' });
    await finishStep(first.id, 'deploy');
    expect((await getRun(t.deps, auth, second.id)).steps[0]).toMatchObject({ state: 'running' });
    await finishStep(second.id, 'deploy');
    expect((await getRun(t.deps, auth, second.id)).state).toBe('passed');
  });

  it('cancel stops every unfinished step; force complete skips them', async () => {
    const run = await start(pipeline(command('a'), command('b', { needs: ['a'] })));
    const canceled = await cancelRun(t.deps, auth, run.id);
    expect(canceled.state).toBe('canceled');
    expect(canceled.steps.map((s) => `${s.key}:${s.state}`)).toEqual(['a:canceled', 'b:canceled']);
    expect(await claim(t, agent, 8)).toEqual([]); // the queued job was canceled with it

    const other = await start(pipeline(command('x'), command('y', { needs: ['x'] })));
    await finishStep(other.id, 'x');
    const forced = await forceCompleteRun(t.deps, auth, other.id);
    expect(forced).toMatchObject({ state: 'passed', forced_by: owner.email });
    expect(forced.steps.map((s) => `${s.key}:${s.state}:${s.reason}`)).toEqual(['x:passed:null', 'y:skipped:forced']);
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'run.force_completed', resourceId: other.id });
  });

  it('a step for a pool that does not exist fails, and the run with it', async () => {
    const run = await start(pipeline(command('lost', { pool: 'nowhere' })));
    expect(run.state).toBe('failed');
    expect((await getRun(t.deps, auth, run.id)).steps[0]).toMatchObject({
      state: 'failed',
      reason: 'there is no pool named "nowhere"',
    });
  });

  it('a running step can upload more steps into its run; they wait for it', async () => {
    const run = await start(pipeline(command('upload')));
    const grown = await appendSteps(
      t.deps,
      auth,
      run.id,
      'upload',
      pipeline(command('generated'), command('later', { needs: ['generated'] })),
    );
    expect(grown.steps.map((s) => `${s.key}:${s.state}:${s.needs.join('+')}`)).toEqual([
      'upload:running:',
      'generated:waiting:upload',
      'later:waiting:generated',
    ]);
    await expect(appendSteps(t.deps, auth, run.id, 'upload', pipeline(command('generated')))).rejects.toMatchObject({
      code: 'step_keys_taken',
    });
    await finishStep(run.id, 'upload');
    await finishStep(run.id, 'generated');
    await finishStep(run.id, 'later');
    expect((await getRun(t.deps, auth, run.id)).state).toBe('passed');
  });

  it('derives the run state: running, blocked on a person, finished', () => {
    const step = (state: StepRow['state'], reason: string | null = null, allow_failure = false) =>
      ({ state, reason, definition: { allow_failure } }) as unknown as StepRow;
    expect(runStateOf([step('passed'), step('running'), step('waiting')])).toBe('running');
    expect(runStateOf([step('passed'), step('blocked'), step('waiting')])).toBe('blocked');
    expect(runStateOf([step('blocked'), step('waiting', 'concurrency')])).toBe('running');
    expect(runStateOf([step('passed'), step('skipped', 'condition')])).toBe('passed');
    expect(runStateOf([step('failed', null, true), step('passed')])).toBe('passed');
    expect(runStateOf([step('failed'), step('skipped', 'dependency')])).toBe('failed');
    expect(runStateOf([step('canceled', 'run_canceled'), step('passed')])).toBe('canceled');
  });
});
