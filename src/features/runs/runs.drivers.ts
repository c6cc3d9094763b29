// How the run engine hands a step to the feature that carries it out. Command steps are
// the engine's own (a job in the queue); block steps belong to approvals and deploy steps
// to deployments, which supply a driver (wired in server.ts), so the engine never imports
// them and they can evolve on their own.
import type { AuthContext } from '../../platform/auth.js';
import type { Queryable } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import type { AfterCommit } from '../../platform/effects.js';
import type { BlockStep, DeployStep } from '../pipelines/pipeline.model.js';
import type { TemplateScope } from '../pipelines/templates.js';
import type { RunRow, StepRow, StepState } from './runs.queries.js';

export interface StepOutcome {
  state: StepState;
  reason?: string | null;
}

export interface StepStarted extends StepOutcome {
  job_id?: string | null;
  approval_id?: string | null;
  deployment_id?: string | null;
}

export interface StepStartContext<D> {
  deps: AppDeps;
  tx: Queryable;
  after: AfterCommit;
  /** Acts for the run (a system actor naming it), for audit events. */
  auth: AuthContext;
  run: RunRow;
  step: StepRow;
  definition: D;
  /** The run's context and the outputs of finished steps, for `${…}` templates. */
  scope: TemplateScope;
}

export interface StepDriver<D> {
  /** Starts the step inside the engine's transaction (create the approval, the deployment…). */
  start(ctx: StepStartContext<D>): Promise<StepStarted>;
  /** Where the step stands now, from the feature's own records; undefined = unchanged. */
  status(tx: Queryable, step: StepRow): Promise<StepOutcome | undefined>;
  /** Stops the step's work because its run is canceled or forced complete. */
  cancel(ctx: { deps: AppDeps; tx: Queryable; after: AfterCommit; auth: AuthContext; step: StepRow }): Promise<void>;
}

export interface StepDrivers {
  block?: StepDriver<BlockStep>;
  deploy?: StepDriver<DeployStep>;
}
