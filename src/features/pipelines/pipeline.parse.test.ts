import { describe, expect, it } from 'vitest';
import { errors, ok, yaml } from '../../../test/helpers/pipelines.js';

describe('step forms normalize to the definition', () => {
  it('command steps: command or commands, agents, env, timeouts, retry, artifacts, priority, concurrency', () => {
    const definition = ok(
      yaml(
        'env:',
        '  NODE_ENV: test',
        '  PORT: 8080',
        'steps:',
        '  - label: Build',
        '    key: build',
        '    command: |',
        '      npm ci',
        '      npm run build',
        '    agents: {pool: linux, os: linux, gpu: true}',
        '    env: {CI_DEBUG: false}',
        '    timeout_in_minutes: 15',
        '    retry:',
        '      max_attempts: 4',
        '      exit_statuses: [1, 137]',
        '      reasons: [agent_lost, timeout]',
        '      backoff_seconds: 5',
        '      max_backoff_seconds: 60',
        '    artifact_paths: "dist/**;coverage/lcov.info"',
        '    priority: HIGH',
        '    concurrency_group: builds',
        '    concurrency: 2',
        '  - key: lint',
        '    commands: [npm run lint, npm run typecheck]',
        '    timeout_seconds: 90',
        '    retry: {exit_statuses: any}',
        '    artifact_paths: [report.xml]',
        '    allow_failure: true',
        '    if: branch == "main"',
        '  - command: [echo one, echo two]',
      ),
    );
    expect(definition).toEqual({
      env: { NODE_ENV: 'test', PORT: '8080' },
      steps: [
        {
          type: 'command',
          key: 'build',
          label: 'Build',
          needs: [],
          commands: ['npm ci\nnpm run build'],
          pool: 'linux',
          tags: { os: 'linux', gpu: 'true' },
          env: { CI_DEBUG: 'false' },
          timeout_seconds: 900,
          max_attempts: 4,
          retry: { exit_statuses: [1, 137], reasons: ['agent_lost', 'timeout'], backoff_seconds: 5, max_backoff_seconds: 60 },
          artifacts: ['dist/**', 'coverage/lcov.info'],
          priority: 'HIGH',
          concurrency_group: 'builds',
          concurrency: 2,
        },
        {
          type: 'command',
          key: 'lint',
          label: 'lint',
          needs: [],
          commands: ['npm run lint', 'npm run typecheck'],
          pool: 'default',
          tags: {},
          env: {},
          timeout_seconds: 90,
          retry: { exit_statuses: 'any' },
          artifacts: ['report.xml'],
          allow_failure: true,
          if: 'branch == "main"',
        },
        {
          type: 'command',
          key: 'step-3',
          label: 'echo one',
          needs: [],
          commands: ['echo one', 'echo two'],
          pool: 'default',
          tags: {},
          env: {},
          artifacts: [],
        },
      ],
    });
  });

  it('block steps: prompt, fields, who may answer, expiry', () => {
    const definition = ok(
      yaml(
        'steps:',
        '  - command: make',
        '    key: build',
        '  - block: Release',
        '    prompt: Ship this build to production?',
        '    key: approve',
        '    fields:',
        '      - {key: notes, label: Release notes, required: true}',
        '      - {key: region, type: select, options: [eu, us], default: eu}',
        '      - {key: canary, type: boolean, default: false}',
        '    allowed_roles: [admin, owner]',
        '    allowed_users: [ops@example.com]',
        '    expires_in_minutes: 60',
        '    on_expiry: continue',
        '  - block: Are you sure?',
      ),
    );
    expect(definition.steps[1]).toEqual({
      type: 'block',
      key: 'approve',
      label: 'Release',
      needs: ['build'],
      prompt: 'Ship this build to production?',
      fields: [
        { key: 'notes', label: 'Release notes', type: 'text', required: true },
        { key: 'region', type: 'select', options: ['eu', 'us'], default: 'eu' },
        { key: 'canary', type: 'boolean', default: false },
      ],
      allowed_roles: ['admin', 'owner'],
      allowed_users: ['ops@example.com'],
      expires_in_seconds: 3600,
      on_expiry: 'continue',
    });
    expect(definition.steps[2]).toEqual({
      type: 'block',
      key: 'are-you-sure',
      label: 'Are you sure?',
      needs: ['approve'],
      prompt: 'Are you sure?',
      fields: [],
      allowed_roles: [],
      allowed_users: [],
      on_expiry: 'fail',
    });
  });

  it('deploy steps: service, environment, a templated version, an optional command', () => {
    const definition = ok(
      yaml(
        'steps:',
        '  - key: build',
        '    command: make',
        '  - deploy: {service: api, environment: production, version: "${steps.build.outputs.version}-${run.number}"}',
        '    needs: build',
        '  - deploy: {service: api, environment: staging, version: "${run.commit}"}',
        '    key: stage',
        '    label: To staging',
        '    command: ./deploy.sh staging',
      ),
    );
    expect(definition.steps.slice(1)).toEqual([
      {
        type: 'deploy',
        key: 'deploy-api-production',
        label: 'Deploy api to production',
        needs: ['build'],
        service: 'api',
        environment: 'production',
        version: '${steps.build.outputs.version}-${run.number}',
      },
      {
        type: 'deploy',
        key: 'stage',
        label: 'To staging',
        needs: [],
        service: 'api',
        environment: 'staging',
        version: '${run.commit}',
        commands: ['./deploy.sh staging'],
      },
    ]);
  });

  it('derives keys from labels, never taking a written key, and numbers clashes', () => {
    const definition = ok(
      yaml(
        'steps:',
        '  - {label: "Unit tests", command: a}',
        '  - {label: "Unit tests", command: b}',
        '  - {key: unit-tests-3, command: c}',
        '  - {key: unit-tests, command: d}',
      ),
    );
    expect(definition.steps.map((s) => s.key)).toEqual(['unit-tests-2', 'unit-tests-4', 'unit-tests-3', 'unit-tests']);
  });

  it('anchors and merge keys share settings between steps', () => {
    const shared = ok(
      yaml('steps:', '  - &base', '    key: a', '    command: a', '    agents: {pool: linux}', '  - <<: *base', '    key: b'),
    );
    expect(shared.steps[1]).toMatchObject({ key: 'b', commands: ['a'], pool: 'linux' });
  });
});

describe('wait and block barriers', () => {
  it('a wait makes every later step need the steps before it (through the last segment)', () => {
    const definition = ok(
      yaml(
        'steps:',
        '  - wait',
        '  - {key: a, command: a}',
        '  - {key: b, command: b}',
        '  - wait',
        '  - wait: ~',
        '  - {key: c, command: c}',
        '  - {key: d, command: d, needs: [c]}',
        '  - wait',
        '  - {key: e, command: e}',
      ),
    );
    expect(Object.fromEntries(definition.steps.map((s) => [s.key, s.needs]))).toEqual({
      a: [],
      b: [],
      c: ['a', 'b'],
      d: ['c', 'a', 'b'],
      e: ['c', 'd'],
    });
  });

  it('a block waits for the steps above it and holds back the steps below', () => {
    const definition = ok(
      yaml(
        'steps:',
        '  - {key: build, command: make}',
        '  - {key: test, command: make test}',
        '  - block: Deploy?',
        '    key: ok',
        '  - {key: deploy, command: ./deploy}',
        '  - {key: notify, command: ./notify}',
      ),
    );
    expect(Object.fromEntries(definition.steps.map((s) => [s.key, s.needs]))).toEqual({
      build: [],
      test: [],
      ok: ['build', 'test'],
      deploy: ['ok'],
      notify: ['ok'],
    });
  });

  it('a dynamic upload may need the run’s steps; steps needing nothing wait for the uploader', () => {
    const definition = ok(yaml('steps:', '  - {key: x, command: x}', '  - {key: y, command: y, needs: [build]}'), {
      existingSteps: { build: [], upload: ['build'] },
      rootNeeds: ['upload'],
    });
    expect(definition.steps.map((s) => s.needs)).toEqual([['upload'], ['build']]);
    expect(errors(yaml('steps:', '  - {key: build, command: x}'), { existingSteps: { build: [] } })).toEqual([
      { line: 2, column: 11, path: 'steps[0].key', message: 'The run already has a step "build"; give this one another key.' },
    ]);
  });
});
