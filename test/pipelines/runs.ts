// Reading runs from an end-to-end server: wait for a state, with the jobs' logs in the
// failure message (what a person would look at first).
import { waitUntil, type E2eServer } from '../agent/harness.js';

export interface RunView {
  id: string;
  number: number;
  state: string;
  steps: { key: string; state: string; job_id: string | null; approval_id: string | null; deployment_id: string | null }[];
}

export async function waitForRun(
  server: E2eServer,
  id: string,
  done: (run: RunView) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<RunView> {
  let run: RunView | undefined;
  try {
    await waitUntil(
      async () => {
        run = (await server.api<RunView>('GET', `/api/v1/runs/${id}`)).body;
        return done(run);
      },
      timeoutMs,
      what,
    );
  } catch (error) {
    const logs = await Promise.all(
      (run?.steps ?? [])
        .filter((s) => s.job_id)
        .map(async (s) => `--- ${s.key}\n${await server.logText(s.job_id!).catch(String)}`),
    );
    throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(run)}\n${logs.join('\n')}`, { cause: error });
  }
  return run!;
}

export const stepOf = (run: RunView, key: string) => run.steps.find((s) => s.key === key)!;

export const stepStates = (run: RunView) => run.steps.map((s) => `${s.key}:${s.state}`);
