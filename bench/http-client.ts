// A keep-alive JSON client for the load generators (node:http: fetch's per-request cost
// would eat the CPU the server needs on a 2-core machine). Records latencies by kind.
import http from 'node:http';

export interface Caller {
  call<T>(
    this: void,
    method: string,
    path: string,
    token: string,
    body?: unknown,
    kind?: string,
  ): Promise<{ status: number; json: T }>;
  latencies: Map<string, number[]>;
  errors(): number;
  close(): void;
}

export function createCaller(base: string, maxSockets = 2_048): Caller {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const latencies = new Map<string, number[]>();
  let errors = 0;
  function call<T>(method: string, path: string, token: string, body?: unknown, kind?: string) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const started = performance.now();
    return new Promise<{ status: number; json: T }>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          agent,
          headers: {
            authorization: `Bearer ${token}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (kind) {
              let list = latencies.get(kind);
              if (!list) latencies.set(kind, (list = []));
              list.push(performance.now() - started);
            }
            const status = res.statusCode ?? 0;
            if (status >= 400) errors++;
            const text = Buffer.concat(chunks).toString();
            resolve({ status, json: (text ? JSON.parse(text) : null) as T });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
  return { call, latencies, errors: () => errors, close: () => agent.destroy() };
}
