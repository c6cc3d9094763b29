// One WebSocket stream client. Kept small on purpose: an idle connection holds this
// object, the ws socket and its subscriptions, nothing else (the target is 10 KiB of
// RSS per connection). Payload buffers are shared between all sockets that send them.
import WebSocket from 'ws';
import type { AuthContext } from '../../platform/auth.js';
import type { Payload, StreamClient, Subscription } from './events.delivery.js';
import type { EventHub } from './events.hub.js';
import { CLOSE, controlMessage, errorMessage, parseClientMessage } from './events.protocol.js';

/** How long a closing socket gets to flush its close frame before it is cut. */
const CLOSE_GRACE_MS = 5_000;
const MAX_BAD_MESSAGES = 20;

export interface SocketLimits {
  maxBufferBytes: number;
}

export class WebSocketClient implements StreamClient {
  readonly transport = 'websocket' as const;
  readonly subscriptions = new Map<string, Subscription>();
  open = true;
  private alive = true;
  private badMessages = 0;

  constructor(
    private readonly ws: WebSocket,
    readonly auth: AuthContext,
    private readonly hub: EventHub,
    private readonly limits: SocketLimits,
    private readonly onClosed: () => void,
  ) {
    ws.on('pong', this.markAlive);
    ws.on('message', this.onMessage);
    ws.once('close', this.onClose);
    ws.on('error', this.onError);
  }

  sendEvent(payload: Payload): void {
    this.write(payload.buffer);
  }

  sendControl(message: string): void {
    this.write(message);
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.ws.close(code, reason);
    // A client that does not read will not answer the close handshake either.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  heartbeat(): void {
    if (!this.alive) return this.ws.terminate();
    this.alive = false;
    this.ws.ping();
  }

  private write(data: Buffer | string): void {
    if (this.writable()) this.ws.send(data, { binary: false });
  }

  private writable(): boolean {
    // After a close frame (ours or the peer's) nothing else may be sent.
    if (!this.open || this.ws.readyState !== WebSocket.OPEN) return false;
    // Backpressure: a reader that falls this far behind is cut off, not buffered without bound.
    if (this.ws.bufferedAmount > this.limits.maxBufferBytes) {
      this.hub.counters.slowConsumers++;
      this.close(CLOSE.slowConsumer, 'slow consumer: send buffer over limit');
      return false;
    }
    return true;
  }

  private readonly markAlive = () => {
    this.alive = true;
  };

  private readonly onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    this.alive = true;
    // Text frames arrive as one Buffer (no fragments array: ws is not asked for them).
    const message =
      isBinary || !Buffer.isBuffer(data) ? 'binary frames are not accepted' : parseClientMessage(data.toString('utf8'));
    if (typeof message === 'string') {
      this.sendControl(errorMessage('bad_message', message));
      if (++this.badMessages > MAX_BAD_MESSAGES) this.close(CLOSE.policy, 'too many malformed messages');
      return;
    }
    if (message.type === 'ping') this.sendControl(controlMessage('pong', null, {}));
    else if (message.type === 'unsubscribe') this.hub.unsubscribe(this, message.topic);
    else void this.hub.subscribe(this, message.topic, message.since);
  };

  private readonly onClose = () => {
    this.open = false;
    this.hub.detach(this);
    this.onClosed();
  };

  private readonly onError = () => {
    // 'close' follows; there is nothing to tell a broken peer.
  };
}
