// The normalized pipeline: what a project's YAML becomes once parsed and validated
// (pipeline.parse.ts), and what the run engine executes. Every step has a key, explicit
// `needs` (a `wait` barrier in the YAML becomes needs on every step before it), and its
// own kind. Nothing here reads YAML or touches the database.
import type { Role } from '../../platform/auth.js';
import type { Priority, RetryRules } from '../queue/queue.model.js';

export const STEP_TYPES = ['command', 'block', 'deploy'] as const;
export type StepType = (typeof STEP_TYPES)[number];

interface StepBase {
  key: string;
  label: string;
  /** Keys of steps that must pass (or be skipped by their condition) first. */
  needs: string[];
  /** Condition on the run (see conditions.ts), e.g. `branch == "main"`; false → skipped. */
  if?: string;
  /** A failure of this step does not fail the run or its dependents. */
  allow_failure?: boolean;
}

export interface CommandStep extends StepBase {
  type: 'command';
  commands: string[];
  /** The pool the job goes to, and the agent tags it requires. */
  pool: string;
  tags: Record<string, string>;
  env: Record<string, string>;
  timeout_seconds?: number;
  max_attempts?: number;
  retry?: Partial<RetryRules>;
  /** Globs of files the agent uploads after the commands (hand-off files, build outputs). */
  artifacts: string[];
  priority?: Priority;
  /** At most `concurrency` jobs of this group run at once, across all runs of the organization. */
  concurrency_group?: string;
  concurrency?: number;
}

export interface BlockField {
  key: string;
  label?: string;
  type: 'text' | 'select' | 'boolean';
  required?: boolean;
  options?: string[];
  default?: string | boolean;
}

export interface BlockStep extends StepBase {
  type: 'block';
  prompt: string;
  fields: BlockField[];
  /** Who may answer: roles of the organization, and/or user ids or emails. Empty both: any member. */
  allowed_roles: Role[];
  allowed_users: string[];
  expires_in_seconds?: number;
  /** What an unanswered block does when it expires. */
  on_expiry: 'fail' | 'continue';
}

export interface DeployStep extends StepBase {
  type: 'deploy';
  service: string;
  environment: string;
  /** May use ${…} templates (see templates.ts), e.g. `${steps.build.outputs.version}`. */
  version: string;
  /** The deploy command run on the environment's pool; default: the environment's own. */
  commands?: string[];
}

export type StepDefinition = CommandStep | BlockStep | DeployStep;

export interface PipelineDefinition {
  /** Environment for every command step (a step's own env wins). */
  env: Record<string, string>;
  steps: StepDefinition[];
}

/** What a run was started from; conditions and templates read it. */
export interface RunContext {
  branch: string | null;
  commit: string | null;
  message: string | null;
  /** api, cli, schedule, webhook, rerun */
  trigger: string;
  /** For webhooks: push, pull_request, merge_request… */
  event: string | null;
}
