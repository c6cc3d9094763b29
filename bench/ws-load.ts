// Load generator for bench/ws.ts, in its own process (started by it, driven over IPC): opens
// many WebSocket connections from several 127.0.0.x source addresses (one address has only
// ~28,000 ephemeral ports), subscribes each to one topic, and measures delivery latency from
// the `sent` timestamp the publisher puts in each event.
import WebSocket from 'ws';

interface OpenCommand {
  cmd: 'open';
  url: string;
  token: string;
  /** How many connections follow each topic. */
  plan: { topic: string; count: number }[];
  sourceAddresses: string[];
  concurrency: number;
}
type Command = { id: number } & (OpenCommand | { cmd: 'reset' } | { cmd: 'report' } | { cmd: 'close' });

const now = () => performance.timeOrigin + performance.now();
const SENT = /"sent":([\d.]+)/;
const sockets: WebSocket[] = [];
let latencies: number[] = [];
let received = 0;
let dropped = 0;
let closing = false;

function connect(url: string, token: string, localAddress: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['cairn.v1'], {
      headers: { authorization: `Bearer ${token}` },
      localAddress,
      perMessageDeflate: false,
    });
    let subscribed = false;
    ws.on('message', (data: Buffer) => {
      const text = data.toString('latin1');
      if (!subscribed) {
        if (text.includes('"type":"subscribed"')) {
          subscribed = true;
          resolve(ws);
        } else if (text.includes('"type":"error"')) reject(new Error(text));
        return;
      }
      received++;
      const sent = SENT.exec(text);
      if (sent) latencies.push(now() - Number(sent[1]));
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', (error) => (subscribed ? undefined : reject(error)));
    ws.once('close', () => {
      if (subscribed && !closing) dropped++;
    });
  });
}

async function open(command: OpenCommand) {
  const started = now();
  const jobs: { topic: string; n: number }[] = command.plan.flatMap((p) =>
    Array.from({ length: p.count }, (_, n) => ({ topic: p.topic, n })),
  );
  let next = 0;
  let failed = 0;
  let firstError = '';
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const address = command.sourceAddresses[sockets.length % command.sourceAddresses.length]!;
      try {
        sockets.push(await connect(`${command.url}?topics=${encodeURIComponent(job.topic)}`, command.token, address));
      } catch (error) {
        failed++;
        firstError ||= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, worker));
  return { opened: sockets.length, failed, firstError, seconds: (now() - started) / 1000 };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

function report() {
  const sorted = Float64Array.from(latencies).sort();
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    received,
    samples: sorted.length,
    dropped,
    open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? NaN),
  };
}

process.on('message', (message: Command) => {
  const answer = (result: unknown) => process.send!({ id: message.id, result });
  if (message.cmd === 'open') void open(message).then(answer);
  else if (message.cmd === 'reset') {
    latencies = [];
    received = 0;
    answer({});
  } else if (message.cmd === 'report') answer(report());
  else {
    closing = true;
    sockets.forEach((s) => s.terminate());
    answer({});
    process.disconnect();
  }
});
