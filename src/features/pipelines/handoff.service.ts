// Hand-off (the seed's "context store", Buildkite's meta-data): a job publishes key/value
// outputs of its own step while it runs; later steps get them as CAIRN_OUTPUT_<STEP>_<KEY>
// in their environment and as ${steps.<key>.outputs.<name>} in templates, and anyone
// allowed to read the run (its own jobs included) reads them over the API.
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { AppError, BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.record.js';
import { lockLeasedJob } from '../logs/logs.queries.js';
import { refusal } from '../queue/reports.service.js';
import { insertRunOutputs, outputsOfRun } from '../runs/runs.queries.js';
import { authorizeRunRead, jobOfToken } from './job-caller.js';
import { countStepOutputs } from './pipelines.queries.js';

export const OUTPUT_MAX_BYTES = 64 * 1024;
/** Outputs become environment variables of every later step: keep them few. */
export const OUTPUTS_PER_STEP = 100;

export interface SetOutputInput {
  jobId: string;
  key: string;
  /** Undefined when no body came. */
  value: string | undefined;
  authorization: string | undefined;
}

export async function setOutput(deps: Pick<AppDeps, 'db' | 'bus' | 'jwtSecret'>, auth: AuthContext, input: SetOutputInput) {
  if (auth.jobId !== input.jobId) throw new NotFoundError('Job');
  const { value } = input;
  if (value === undefined) throw new BadRequestError('Send the value as text/plain, or as {"value": "…"}.', 'body_required');
  // PostgreSQL text cannot hold NUL; a binary value belongs in an artifact.
  if (value.includes('\0'))
    throw new BadRequestError('An output is text and cannot contain NUL; upload binary data as an artifact.', 'invalid_output');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > OUTPUT_MAX_BYTES) {
    throw new AppError(413, 'output_too_large', 'Payload too large', `An output holds at most ${OUTPUT_MAX_BYTES} bytes.`, {
      max_bytes: OUTPUT_MAX_BYTES,
    });
  }
  const job = await jobOfToken(deps, auth, input.authorization);
  if (!job.run_id || !job.step_key) {
    throw new ConflictError('This job is not a step of a run, so it has no outputs to hand on.', 'not_in_run');
  }
  const { run_id: runId, step_key: stepKey } = job;
  if ((await countStepOutputs(deps.db, runId, stepKey, input.key)) >= OUTPUTS_PER_STEP) {
    throw new ConflictError(`A step publishes at most ${OUTPUTS_PER_STEP} outputs.`, 'too_many_outputs');
  }
  const written = await transactionWithEffects(deps.db, async (tx, after) => {
    // Held under the job's lease until the commit, so the output lands before the job can
    // finish and the engine starts the steps that read it.
    const leased = await lockLeasedJob(tx, {
      orgId: auth.orgId,
      agentId: job.agent_id!,
      jobId: job.id,
      leaseToken: job.lease_token,
    });
    if (!leased) return false;
    await insertRunOutputs(tx, { orgId: auth.orgId, runId, stepKey, values: { [input.key]: value }, jobId: job.id });
    await recordAudit(tx, auth, {
      action: 'run.output_set',
      resource: ['run', runId],
      projectId: job.project_id,
      details: { step: stepKey, key: input.key, bytes, job_id: job.id, attempt: job.attempt },
    });
    after.add(() =>
      publishOrgEvent(deps.bus, auth.orgId, 'run.output_set', {
        run_id: runId,
        project_id: job.project_id,
        step_key: stepKey,
        key: input.key,
        job_id: job.id,
      }),
    );
    return true;
  });
  if (!written) throw await refusal(deps, { ...auth, agentId: job.agent_id! }, job.id);
  return { run_id: runId, step_key: stepKey, key: input.key, bytes };
}

export async function listRunOutputs(deps: Pick<AppDeps, 'db'>, auth: AuthContext, runId: string) {
  await authorizeRunRead(deps, auth, runId);
  return { items: await outputsOfRun(deps.db, runId) };
}
