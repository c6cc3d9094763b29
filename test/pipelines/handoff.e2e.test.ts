// The hand-off end to end: a real server, a real `cairn agent`, and jobs whose commands use
// `cairn step …` and `cairn pipeline upload` (the agent puts `cairn`, CAIRN_URL and the job's
// token in each job's environment). Step 1 hands a value and a file to step 3.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startServer, waitUntil, type E2eAgent, type E2eServer } from '../agent/harness.js';

let server: E2eServer;
let agent: E2eAgent;

beforeAll(async () => {
  server = await startServer();
  agent = await startAgent(server, await server.createPool('linux'), { concurrency: 2 });
}, 120_000);
afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

const PIPELINE = `steps:
  - key: build
    agents: {pool: linux}
    commands:
      - mkdir -p dist && echo "built by run $CAIRN_RUN_NUMBER" > dist/app.txt
      - cairn step output set version "1.0.$CAIRN_RUN_NUMBER"
      - printf 'line one\\nline two' | cairn step output set notes -
      - cairn step artifact upload dist/app.txt
      - echo "my token is $CAIRN_JOB_TOKEN"
  - key: test
    agents: {pool: linux}
    needs: build
    command: test "$CAIRN_OUTPUT_BUILD_VERSION" = "1.0.1"
  - key: ship
    agents: {pool: linux}
    needs: test
    commands:
      - test "$(cairn step output get version)" = "1.0.1"
      - test "$(cairn step output get notes --step build)" = "$(printf 'line one\\nline two')"
      - cairn step artifact download dist/app.txt --step build --to got
      - grep -q "built by run 1" got/dist/app.txt
      - |
        cat > more.yml <<'YAML'
        steps:
          - key: after
            agents: {pool: linux}
            command: echo "after ship, version $CAIRN_OUTPUT_BUILD_VERSION"
        YAML
      - cairn pipeline upload more.yml
`;

type RunJson = { id: string; state: string; steps: { key: string; state: string; job_id: string | null; needs: string[] }[] };

describe('hand-offs with the real agent', () => {
  it('a three-step pipeline: a value and a file from step 1 used by step 3, which uploads one more step', async () => {
    const project = await server.api<{ id: string }>('POST', '/api/v1/projects', { name: 'Hand-off e2e' });
    expect(project.status).toBe(201);
    const put = await server.api('PUT', `/api/v1/projects/${project.body.id}/pipeline`, { source: PIPELINE });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const started = await server.api<RunJson>('POST', `/api/v1/projects/${project.body.id}/runs`, { branch: 'main' });
    expect(started.status).toBe(201);

    let run = started.body;
    await waitUntil(
      async () => {
        run = (await server.api<RunJson>('GET', `/api/v1/runs/${started.body.id}`)).body;
        return ['passed', 'failed', 'canceled'].includes(run.state);
      },
      110_000,
      'the run to finish',
    );
    const logs = await Promise.all(
      run.steps.map(async (s) => `--- ${s.key} (${s.state})\n${s.job_id ? await server.logText(s.job_id) : ''}`),
    );
    expect(run.state, logs.join('\n')).toBe('passed');
    expect(run.steps.map((s) => `${s.key}:${s.needs.join('+')}`)).toEqual(['build:', 'test:build', 'ship:test', 'after:ship']);

    const outputs = await server.api<{ items: unknown[] }>('GET', `/api/v1/runs/${run.id}/outputs`);
    expect(outputs.body.items).toEqual([
      { step_key: 'build', key: 'notes', value: 'line one\nline two' },
      { step_key: 'build', key: 'version', value: '1.0.1' },
    ]);
    const buildLog = await server.logText(run.steps[0]!.job_id!);
    expect(buildLog).toContain('my token is [REDACTED]');
    expect(buildLog).not.toMatch(/cairn_job_/);
    expect(await server.logText(run.steps[3]!.job_id!)).toContain('after ship, version 1.0.1');
  }, 150_000);
});
