// The pipelines benchmark's load generator (run by bench/pipelines.ts in its own process):
// triggers RUNS runs of a project's pipeline, plays AGENTS agents that claim in batches and
// complete at once, and (with APPROVE=1) answers every block step's approval as soon as
// it appears, APPROVERS (default 8) at a time. Prints one JSON line, with the latencies of the agents' completion reports
// and of the approvals' answers (each commits the next steps' jobs with it); transition
// times are taken from the database afterwards.
import { createCaller } from './http-client.js';
import { percentiles } from './lib.js';

const TOKEN = process.env.BENCH_TOKEN!;
const PROJECT = process.env.BENCH_PROJECT!;
const POOL_TOKEN = process.env.BENCH_POOL_TOKEN!;
const RUNS = Number(process.env.RUNS ?? 1000);
const AGENTS = Number(process.env.AGENTS ?? 4);
const JOBS_PER_RUN = Number(process.env.JOBS_PER_RUN ?? 3);
const APPROVE = process.env.APPROVE === '1';
const APPROVERS = Number(process.env.APPROVERS ?? 8);
const http = createCaller(process.env.BENCH_URL!, 512);
const { call } = http;

let done = 0;
const target = RUNS * JOBS_PER_RUN;

async function playAgent(index: number) {
  const reg = await call<{ agent: { id: string }; token: string }>('POST', '/api/v1/agents', POOL_TOKEN, {
    name: `bench-${index}`,
    max_concurrency: 100,
  });
  const token = reg.json.token;
  // Heartbeat as `cairn agent` does, or a run longer than the lost-agent threshold stalls.
  void (async () => {
    while (done < target) {
      await call('POST', `/api/v1/agents/${reg.json.agent.id}/heartbeat`, token, { running_jobs: [] });
      await new Promise((r) => setTimeout(r, 5_000).unref());
    }
  })();
  while (done < target) {
    const res = await call<{ jobs: { id: string; lease_token: string }[] }>('POST', '/api/v1/queue/claim', token, {
      max: 50,
      wait_seconds: 2,
    });
    if (res.status !== 200) continue;
    const reports = (action: string) => res.json.jobs.map((j) => ({ job_id: j.id, lease_token: j.lease_token, action }));
    await call('POST', '/api/v1/queue/reports', token, { reports: reports('start') });
    await call('POST', '/api/v1/queue/reports', token, { reports: reports('complete') }, 'complete');
    done += res.json.jobs.length;
  }
}

async function answerApprovals() {
  let answered = 0;
  while (answered < RUNS) {
    const res = await call<{ items: { id: string }[] }>('GET', `/api/v1/approvals?state=pending&limit=200`, TOKEN);
    if (res.json.items.length === 0) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    // APPROVERS people (or bots) answer at once, each taking the next pending approval.
    const queue = [...res.json.items];
    await Promise.all(
      Array.from({ length: APPROVERS }, async () => {
        for (let a = queue.shift(); a; a = queue.shift()) {
          await call('POST', `/api/v1/approvals/${a.id}/respond`, TOKEN, { decision: 'approve' }, 'respond');
        }
      }),
    );
    answered += res.json.items.length;
  }
}

const started = performance.now();
const triggering = (async () => {
  for (let i = 0; i < RUNS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, RUNS - i) }, () =>
        call('POST', `/api/v1/projects/${PROJECT}/runs`, TOKEN, { branch: 'main' }).then((r) => {
          if (r.status !== 201) throw new Error(`trigger failed: ${r.status} ${JSON.stringify(r.json)}`);
        }),
      ),
    );
  }
})();
await Promise.all([
  triggering,
  ...Array.from({ length: AGENTS }, (_, i) => playAgent(i)),
  ...(APPROVE ? [answerApprovals()] : []),
]);
console.log(
  JSON.stringify({
    runs: RUNS,
    jobs: done,
    seconds: (performance.now() - started) / 1000,
    complete: percentiles(http.latencies.get('complete') ?? []),
    respond: percentiles(http.latencies.get('respond') ?? []),
    errors: http.errors(),
  }),
);
http.close();
process.exit(0);
