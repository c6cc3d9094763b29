// The agent protocol (src/features/queue/README.md), typed: what `cairn agent` calls and
// what tests may call to act as an agent. Only the fields an agent uses are typed.
import { apiRequest, type ApiTarget } from './api-request.js';

export interface AgentView {
  id: string;
  name: string;
  pool: string;
  pool_id: string;
  status: string;
  tags: Record<string, string>;
  max_concurrency: number;
}

export interface Registration {
  agent: AgentView;
  token: string;
  heartbeat_interval_seconds: number;
  lease_seconds: number;
  /** Silent this long, the server declares the agent lost (older servers do not say). */
  lost_after_seconds?: number;
}

export interface RegisterInput {
  name: string;
  hostname?: string;
  version?: string;
  os?: string;
  tags?: Record<string, string>;
  max_concurrency?: number;
}

export interface HeartbeatInput {
  running_jobs: string[];
  load?: Record<string, unknown>;
  draining?: boolean;
}

export interface HeartbeatAnswer {
  status: string;
  cancel: string[];
  abandon: string[];
  heartbeat_interval_seconds: number;
  lease_seconds: number;
  /** Silent this long, the server declares the agent lost (older servers do not say). */
  lost_after_seconds?: number;
}

export interface ClaimedJob {
  id: string;
  name: string;
  priority: string;
  pool: string | null;
  attempt: number;
  commands: string[];
  env: Record<string, string>;
  artifacts: string[];
  timeout_seconds: number;
  tags: Record<string, string>;
  cancel_requested: boolean;
  lease_token: string;
}

export interface ClaimAnswer {
  jobs: ClaimedJob[];
  lease_seconds: number;
}

export type FinalReport =
  | { job_id: string; lease_token: string; action: 'complete'; exit_status: number }
  | {
      job_id: string;
      lease_token: string;
      action: 'fail';
      reason: 'exit_status' | 'timeout' | 'canceled' | 'error';
      exit_status?: number;
      message?: string;
    };

export type ReportResult =
  | { job_id: string; ok: true; state?: string; attempt?: number }
  | { job_id: string; ok: false; error: { status: number; code: string; detail: string } };

export interface LogAnswer {
  size: number;
  truncated: boolean;
  cancel_requested: boolean;
}

export interface ArtifactAnswer {
  id: string;
  path: string;
  size: number;
  sha256: string;
}

/** Registration uses the pool's registration token; everything else the agent's own. */
export async function registerAgent(target: ApiTarget, input: RegisterInput, timeoutMs = 30_000): Promise<Registration> {
  const answer = await apiRequest<Registration>(target, { method: 'POST', path: '/api/v1/agents', json: input, timeoutMs });
  return answer.body!;
}

export interface AgentApi {
  heartbeat(agentId: string, input: HeartbeatInput, timeoutMs: number): Promise<HeartbeatAnswer>;
  /** Long-polls up to `waitSeconds`; [] when nothing came. */
  claim(max: number, waitSeconds: number, signal?: AbortSignal): Promise<ClaimAnswer>;
  start(jobId: string, leaseToken: string): Promise<void>;
  reports(reports: FinalReport[]): Promise<ReportResult[]>;
  appendLog(jobId: string, body: { lease_token: string; offset: number; data: string }): Promise<LogAnswer>;
  /** Streams `body`; `size` (when known) lets the server refuse an oversized file before it arrives. */
  uploadArtifact(
    jobId: string,
    leaseToken: string,
    relativePath: string,
    body: ReadableStream<Uint8Array>,
    size?: number,
  ): Promise<ArtifactAnswer>;
  deregister(agentId: string, timeoutMs: number): Promise<void>;
}

export function agentApi(target: ApiTarget): AgentApi {
  return {
    async heartbeat(agentId, input, timeoutMs) {
      const path = `/api/v1/agents/${encodeURIComponent(agentId)}/heartbeat`;
      return (await apiRequest<HeartbeatAnswer>(target, { method: 'POST', path, json: input, timeoutMs })).body!;
    },
    async claim(max, waitSeconds, signal) {
      const answer = await apiRequest<ClaimAnswer>(target, {
        method: 'POST',
        path: '/api/v1/queue/claim',
        json: { max, wait_seconds: waitSeconds },
        // The server holds the request up to waitSeconds; allow for its answer on top.
        timeoutMs: (waitSeconds + 15) * 1000,
        signal,
      });
      return answer.body ?? { jobs: [], lease_seconds: 0 };
    },
    async start(jobId, leaseToken) {
      const path = `/api/v1/jobs/${encodeURIComponent(jobId)}/start`;
      await apiRequest(target, { method: 'POST', path, json: { lease_token: leaseToken }, timeoutMs: 15_000 });
    },
    async reports(reports) {
      const answer = await apiRequest<{ results: ReportResult[] }>(target, {
        method: 'POST',
        path: '/api/v1/queue/reports',
        json: { reports },
        timeoutMs: 30_000,
      });
      return answer.body!.results;
    },
    async appendLog(jobId, body) {
      const path = `/api/v1/jobs/${encodeURIComponent(jobId)}/log`;
      return (await apiRequest<LogAnswer>(target, { method: 'POST', path, json: body, timeoutMs: 30_000 })).body!;
    },
    async uploadArtifact(jobId, leaseToken, relativePath, body, size) {
      const answer = await apiRequest<ArtifactAnswer>(target, {
        method: 'PUT',
        path: `/api/v1/jobs/${encodeURIComponent(jobId)}/artifacts?path=${encodeURIComponent(relativePath)}`,
        body,
        headers: {
          'content-type': 'application/octet-stream',
          'x-lease-token': leaseToken,
          ...(size === undefined ? {} : { 'content-length': String(size) }),
        },
        // Large files take time; the server's own limits bound the size.
        timeoutMs: 30 * 60_000,
      });
      return answer.body!;
    },
    async deregister(agentId, timeoutMs) {
      await apiRequest(target, { method: 'DELETE', path: `/api/v1/agents/${encodeURIComponent(agentId)}`, timeoutMs });
    },
  };
}
