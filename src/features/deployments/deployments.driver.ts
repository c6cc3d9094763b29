// Deploy steps: a run's step that deploys a version (a `${…}` template over the run and
// earlier outputs) of a service to an environment, under the environment's rules like any
// deployment. The step is `blocked` while the deployment awaits approval and `running`
// while it waits its turn or deploys; where it stands is read from the deployment and,
// while deploying, from its job — so a lost jobs-ended notice never strands the run.
import { AppError } from '../../platform/errors.js';
import type { DeployStep } from '../pipelines/pipeline.model.js';
import { renderTemplate, TemplateError } from '../pipelines/templates.js';
import type { StepDriver, StepOutcome } from '../runs/runs.drivers.js';
import { cancelDeploymentInTx, effectiveState, lockForCancel } from './deployments.lifecycle.js';
import { findDeployment, type DeploymentState } from './deployments.queries.js';
import { deployInTx } from './deployments.service.js';

const STEP_STATE: Record<DeploymentState, StepOutcome['state']> = {
  pending: 'running',
  awaiting_approval: 'blocked',
  deploying: 'running',
  succeeded: 'passed',
  failed: 'failed',
  rejected: 'failed',
  canceled: 'canceled',
};

export const deployStepDriver: StepDriver<DeployStep> = {
  async start(ctx) {
    const d = ctx.definition;
    try {
      const deployment = await deployInTx(ctx, {
        projectId: ctx.run.project_id,
        service: d.service,
        version: renderTemplate(d.version, ctx.scope),
        environment: d.environment,
        commands: d.commands,
        runId: ctx.run.id,
        stepKey: ctx.step.key,
      });
      return {
        state: STEP_STATE[deployment.state],
        reason: deployment.reason,
        deployment_id: deployment.id,
        job_id: deployment.job_id,
        approval_id: deployment.approval_id,
      };
    } catch (error) {
      // A version that cannot deploy (not passed staging, a bad template, no commands) fails the step, saying why.
      if (error instanceof TemplateError) return { state: 'failed', reason: error.message };
      if (error instanceof AppError && error.status < 500) return { state: 'failed', reason: error.detail ?? error.title };
      throw error;
    }
  },

  async status(tx, step) {
    if (!step.deployment_id) return { state: 'failed', reason: 'its deployment is gone' };
    const d = await findDeployment(tx, step.org_id, step.deployment_id);
    if (!d) return { state: 'failed', reason: 'its deployment is gone' };
    const now = await effectiveState(tx, d);
    return { state: STEP_STATE[now.state], reason: now.reason ?? null };
  },

  async cancel(ctx) {
    if (!ctx.step.deployment_id) return;
    const d = await lockForCancel(ctx.tx, ctx.step.org_id, ctx.step.deployment_id);
    if (d) await cancelDeploymentInTx(ctx, d, `run step ${ctx.step.key} stopped`);
  },
};
