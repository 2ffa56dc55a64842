/**
 * A fault-injecting TCP proxy for tests: put it between agents and the collector and script what
 * the link does. It is our own (node:net only) because the usual tools need a separate daemon
 * (toxiproxy, a Go binary) or root (tc/netem), and the scenarios need a hook neither offers: hold
 * a reply in flight while the test kills the collector.
 *
 *   const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
 *   proxy.setFaults({ latency: { ms: 50, jitterMs: 20 }, bandwidth: { bytesPerSecond: 32_000 } });
 *
 * Each direction of each connection is one ordered pipeline: bytes in → [tiny slices] →
 * [bandwidth pacing, shared by all connections like one link] → [latency + jitter] → out. Resets,
 * closes and stream ends travel through the same pipeline as markers, so "reset after N bytes"
 * fires after exactly those N bytes reached the other side, and an upstream close never overtakes
 * the reply bytes before it.
 *
 * Live vs per-exchange: latency, bandwidth, slicing and the black hole apply to every chunk
 * from the moment they are set. Reset/close-after-N faults apply per exchange — a request and
 * its reply; a new one starts with the first client→server bytes after server→client bytes — so
 * they reach keep-alive connections too: the dice (`probability` < 1) are rolled at the start
 * of each exchange, and N counts from there (or, for a fault set mid-exchange, from that moment).
 */
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { seededRandom } from './seeded-random.ts';

export interface FaultTarget {
  host: string;
  port: number;
}

/** A number of bytes, or a range [min, max] to draw it from (uniformly, per exchange). */
export type ByteCount = number | readonly [number, number];

/** A fault that fires on a share of exchanges (`probability`, default 1: every exchange). */
interface PerConnectionFault {
  probability?: number;
}

export interface Faults {
  /** Each chunk is delivered `ms` + uniform(0, jitterMs) later (order kept), both directions. */
  latency?: { ms: number; jitterMs?: number };
  /** Cap each direction at this rate (a token bucket shared by all connections: one link). */
  bandwidth?: { bytesPerSecond: number };
  /**
   * Forward N bytes of a request, then reset both sides (the client sees ECONNRESET). N is fixed,
   * or drawn per exchange from [min, max] so that resets land anywhere in headers and body.
   */
  resetMidRequest?: PerConnectionFault & { afterBytes: ByteCount };
  /** Forward N bytes of a reply, then reset both sides. */
  resetMidResponse?: PerConnectionFault & { afterBytes: ByteCount };
  /** Forward N bytes of an exchange (both directions together), then close both sides with a FIN. */
  closeAfter?: PerConnectionFault & { bytes: ByteCount };
  /**
   * Accept, read, never forward or answer. Connections it touches stay dead after it is
   * lifted (like a NAT box that lost their state); new connections then work again.
   */
  blackHole?: boolean;
  /** Deliver in writes of 1…maxBytes bytes each (random sizes), both directions. */
  slice?: { maxBytes: number };
}

export type ResponseVerdict = 'forward' | 'drop' | 'reset';

export interface ResponseStart {
  connection: number;
  /** The first bytes (≤ 4 KiB) of the request this reply answers, e.g. "POST /api/v1/batches …". */
  requestHead: string;
  /** The first bytes (≤ 4 KiB) of the held reply, e.g. "HTTP/1.1 200 OK …". */
  responseHead: string;
}

/**
 * Called when a reply starts: the first server→client bytes after client→server bytes. The reply
 * (and the upstream's close, if it dies meanwhile) is held until the promise settles; then it is
 * forwarded ('forward', the default), or the client connection is closed ('drop') or reset
 * ('reset') without a byte of it.
 */
export type ResponseStartHook = (start: ResponseStart) => ResponseVerdict | void | Promise<ResponseVerdict | void>;

export interface FaultProxyStats {
  connections: number;
  open: number;
  /** Bytes delivered to the server / to the client. */
  bytesToServer: number;
  bytesToClient: number;
  /** Bytes read and thrown away (black hole, after a reset or close). */
  bytesDropped: number;
  faults: {
    resetMidRequest: number;
    resetMidResponse: number;
    closeAfter: number;
    blackHoled: number;
    upstreamRefused: number;
    responseHooks: number;
    responsesDropped: number;
  };
}

export interface FaultProxy {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  setFaults(faults: Faults): void;
  /** Where new connections go (e.g. a collector restarted on another port). */
  setTarget(target: FaultTarget): void;
  onResponseStart(hook: ResponseStartHook | null): void;
  stats(): FaultProxyStats;
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>;
}

type Marker = { kind: 'end' } | { kind: 'reset'; fault?: 'resetMidRequest' | 'resetMidResponse' } | { kind: 'close' } | { kind: 'hook'; requestHead: string; responseHead: string };
type Item = Buffer | Marker;

/** Bytes a paused source may queue before we stop reading it (backpressure). */
const HIGH_WATER = 1024 * 1024;
const REQUEST_HEAD_BYTES = 4096;
/** How long the receiver of the last bytes before a reset gets to read them. */
const RESET_GRACE_MS = 25;

/**
 * Pacing for one direction of the link (GCRA, the arithmetic form of a token bucket): each piece
 * of n bytes advances a virtual clock by n/rate; a piece may leave once it is no more than one
 * burst ahead of that clock. Pieces are cut to ≤ burst bytes so pacing stays smooth.
 */
class LinkPacer {
  #theoreticalArrival = 0;

  /** Milliseconds to wait before sending `bytes` at `bytesPerSecond`. */
  reserve(bytes: number, bytesPerSecond: number, now: number): number {
    const burstMs = (burstBytes(bytesPerSecond) / bytesPerSecond) * 1000;
    this.#theoreticalArrival = Math.max(this.#theoreticalArrival, now) + (bytes / bytesPerSecond) * 1000;
    return Math.max(0, this.#theoreticalArrival - burstMs - now);
  }
}

/** 50 ms of the link's rate, between 1 byte and 16 KiB: small enough to pace smoothly. */
function burstBytes(bytesPerSecond: number): number {
  return Math.max(1, Math.min(16 * 1024, Math.floor(bytesPerSecond / 20)));
}

export async function startFaultProxy(options: { target: FaultTarget; faults?: Faults; seed?: number }): Promise<FaultProxy> {
  let target = options.target;
  let faults: Faults = options.faults ?? {};
  let hook: ResponseStartHook | null = null;
  const random = seededRandom(options.seed ?? 1);
  const pacers = { toServer: new LinkPacer(), toClient: new LinkPacer() };
  const stats: FaultProxyStats = {
    connections: 0,
    open: 0,
    bytesToServer: 0,
    bytesToClient: 0,
    bytesDropped: 0,
    faults: { resetMidRequest: 0, resetMidResponse: 0, closeAfter: 0, blackHoled: 0, upstreamRefused: 0, responseHooks: 0, responsesDropped: 0 },
  };
  const sockets = new Set<Socket>();

  // allowHalfOpen: a client's FIN is forwarded as a FIN, and the reply may still follow it.
  const server: Server = createServer({ allowHalfOpen: true }, (client) => handleConnection(client));

  function handleConnection(client: Socket): void {
    const id = ++stats.connections;
    stats.open++;
    sockets.add(client);
    client.on('close', () => {
      stats.open--;
      sockets.delete(client);
    });
    client.on('error', () => client.destroy());

    if (faults.blackHole) {
      // Read and discard; never connect upstream, so the server never sees the connection.
      stats.faults.blackHoled++;
      client.on('data', (chunk: Buffer) => void (stats.bytesDropped += chunk.length));
      client.on('end', () => client.destroy());
      return;
    }

    const upstream = new Socket({ allowHalfOpen: true });
    sockets.add(upstream);
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    let upstreamConnected = false;
    /** The connection is over: nothing more is delivered. */
    let dead = false;
    /** A fault marker is on its way: nothing more is read. */
    let ending = false;
    let blackHoled = false;
    let lastDirection: 'request' | 'response' | null = null;
    let requestHead = '';
    type Count = 'request' | 'response' | 'both';
    const counted = { request: 0, response: 0, both: 0 };
    let exchange = 0;
    let exchangeStart = { ...counted };
    // Per fault setting (object identity): armed for the current exchange or not, from which count.
    // `at`: the count at which the fault fires in this exchange.
    const armed = new Map<object, { exchange: number; on: boolean; at: number }>();
    const arm = (fault: PerConnectionFault | undefined, bytes: ByteCount | undefined, count: Count) => {
      if (!fault || bytes === undefined) return undefined;
      let state = armed.get(fault);
      if (!state || state.exchange !== exchange) {
        const midExchange = !state && counted.both > exchangeStart.both;
        const base = midExchange ? counted[count] : exchangeStart[count];
        const n = typeof bytes === 'number' ? bytes : bytes[0] + Math.floor(random() * (bytes[1] - bytes[0] + 1));
        state = { exchange, on: random() < (fault.probability ?? 1), at: base + n };
        armed.set(fault, state);
      }
      return state.on ? state : undefined;
    };

    /**
     * Ends the connection. A reset after N bytes resets the side that was receiving them only
     * once they had time to be read: Linux throws away unread data when a RST arrives, and a
     * middlebox resetting mid-stream would not have unsent what already passed it.
     */
    const finish = (how: 'reset' | 'close' | 'destroy', receiver?: Socket) => {
      if (dead) return;
      dead = true;
      toServer.stop();
      toClient.stop();
      for (const socket of [client, upstream]) {
        if (socket.destroyed) continue;
        if (how === 'reset' && socket === receiver) {
          socket.pause();
          socket.write('', () => setTimeout(() => socket.destroyed || socket.resetAndDestroy(), RESET_GRACE_MS));
        } else if (how === 'reset' && (socket === client || upstreamConnected)) socket.resetAndDestroy();
        else if (how === 'close') socket.end(() => socket.destroy());
        else socket.destroy();
      }
    };

    const runHook = async (heads: { requestHead: string; responseHead: string }): Promise<ResponseVerdict> => {
      if (!hook) return 'forward';
      stats.faults.responseHooks++;
      return (await hook({ connection: id, ...heads })) ?? 'forward';
    };

    const makePipe = (name: 'toServer' | 'toClient', source: Socket, sink: Socket) => {
      const input: Item[] = [];
      const deliveries: Array<{ at: number; item: Item }> = [];
      let queuedBytes = 0;
      let pumping = false;
      let lastDeliverAt = 0;
      let deliveryTimer: NodeJS.Timeout | undefined;
      let nextTurn: NodeJS.Immediate | undefined;
      let ended = false;

      // Backpressure: stop reading while too much waits here or the sink is full.
      const flow = () => {
        if (source.destroyed) return;
        if (queuedBytes > HIGH_WATER || sink.writableNeedDrain) source.pause();
        else source.resume();
      };
      sink.on('drain', flow);

      const push = (item: Item) => {
        if (!Buffer.isBuffer(item) && item.kind === 'end') {
          if (ended) return;
          ended = true;
        }
        input.push(item);
        if (Buffer.isBuffer(item)) queuedBytes += item.length;
        flow();
        void pump();
      };

      // Takes items in order, waits for pacing and for the reply hook, hands them to delivery.
      const pump = async () => {
        if (pumping) return;
        pumping = true;
        try {
          while (input.length > 0 && !dead) {
            const item = input.shift()!;
            if (Buffer.isBuffer(item)) {
              for (const piece of cut(item)) {
                const rate = faults.bandwidth?.bytesPerSecond;
                if (rate) {
                  const wait = pacers[name].reserve(piece.length, rate, Date.now());
                  if (wait > 0) await sleep(wait);
                  if (dead) return;
                }
                schedule(piece);
              }
            } else if (item.kind === 'hook') {
              const verdict = await runHook(item);
              if (verdict !== 'forward') {
                stats.faults.responsesDropped++;
                finish(verdict === 'reset' ? 'reset' : 'destroy');
                return;
              }
            } else {
              schedule(item);
            }
          }
        } finally {
          pumping = false;
        }
      };

      const cut = (chunk: Buffer): Buffer[] => {
        const paced = faults.bandwidth ? burstBytes(faults.bandwidth.bytesPerSecond) : Infinity;
        const sliced = faults.slice?.maxBytes;
        if (!sliced && chunk.length <= paced) return [chunk];
        const pieces: Buffer[] = [];
        for (let at = 0; at < chunk.length; ) {
          const size = sliced ? 1 + Math.floor(random() * Math.min(paced, sliced)) : paced;
          pieces.push(chunk.subarray(at, at + size));
          at += size;
        }
        return pieces;
      };

      // Latency: a delivery time per item, never earlier than the one before, so order is kept.
      const schedule = (item: Item) => {
        const delay = faults.latency ? faults.latency.ms + random() * (faults.latency.jitterMs ?? 0) : 0;
        lastDeliverAt = Math.max(lastDeliverAt, Date.now() + delay);
        deliveries.push({ at: lastDeliverAt, item });
        // A pending timer or turn already covers this item: it is due no earlier than the queue head.
        if (!deliveryTimer && !nextTurn) deliver();
      };

      const deliver = () => {
        clearTimeout(deliveryTimer);
        clearImmediate(nextTurn);
        deliveryTimer = undefined;
        nextTurn = undefined;
        // Until the upstream connects, its socket would buffer every write into one.
        if (name === 'toServer' && !upstreamConnected) return;
        while (deliveries.length > 0 && deliveries[0]!.at <= Date.now() && !dead) {
          const { item } = deliveries.shift()!;
          if (Buffer.isBuffer(item)) {
            queuedBytes -= item.length;
            if (name === 'toServer') stats.bytesToServer += item.length;
            else stats.bytesToClient += item.length;
            if (!sink.destroyed && !sink.writableEnded) sink.write(item);
            if (faults.slice && deliveries.length > 0) {
              // One slice per event-loop turn, so the peer reads them as separate small reads
              // instead of the kernel handing it one coalesced buffer.
              nextTurn = setImmediate(deliver);
              flow();
              return;
            }
          } else if (item.kind === 'end') {
            if (!sink.destroyed) sink.end();
          } else if (item.kind === 'reset') {
            if (item.fault) stats.faults[item.fault]++;
            finish('reset', item.fault ? sink : undefined);
          } else if (item.kind === 'close') {
            stats.faults.closeAfter++;
            finish('close');
          }
        }
        flow();
        if (deliveries.length > 0 && !dead) deliveryTimer = setTimeout(deliver, Math.max(0, deliveries[0]!.at - Date.now()));
      };

      return {
        push,
        deliver,
        stop: () => {
          clearTimeout(deliveryTimer);
          clearImmediate(nextTurn);
        },
      };
    };

    const toServer = makePipe('toServer', client, upstream);
    const toClient = makePipe('toClient', upstream, client);

    // Splits an arriving chunk where a per-connection fault fires and queues its marker after it.
    const onData = (direction: 'request' | 'response', chunk: Buffer) => {
      if (faults.blackHole && !blackHoled) {
        blackHoled = true;
        stats.faults.blackHoled++;
      }
      if (dead || ending || blackHoled) {
        stats.bytesDropped += chunk.length;
        return;
      }
      const pipe = direction === 'request' ? toServer : toClient;
      if (direction === 'request') {
        if (lastDirection === 'response') {
          exchange++;
          exchangeStart = { ...counted };
        }
        if (lastDirection !== 'request') requestHead = '';
        if (requestHead.length < REQUEST_HEAD_BYTES) requestHead += chunk.subarray(0, REQUEST_HEAD_BYTES - requestHead.length).toString('latin1');
      } else if (lastDirection !== 'response' && hook) {
        pipe.push({ kind: 'hook', requestHead, responseHead: chunk.subarray(0, REQUEST_HEAD_BYTES).toString('latin1') });
      }
      lastDirection = direction;

      let cutAt = chunk.length;
      let marker: Marker | undefined;
      const resetFault = direction === 'request' ? faults.resetMidRequest : faults.resetMidResponse;
      const reset = arm(resetFault, resetFault?.afterBytes, direction);
      if (reset && reset.at - counted[direction] < cutAt) {
        cutAt = Math.max(0, reset.at - counted[direction]);
        marker = { kind: 'reset', fault: direction === 'request' ? 'resetMidRequest' : 'resetMidResponse' };
      }
      const close = arm(faults.closeAfter, faults.closeAfter?.bytes, 'both');
      if (close && close.at - counted.both < cutAt) {
        cutAt = Math.max(0, close.at - counted.both);
        marker = { kind: 'close' };
      }
      counted[direction] += chunk.length;
      counted.both += chunk.length;
      if (cutAt > 0) pipe.push(cutAt === chunk.length ? chunk : chunk.subarray(0, cutAt));
      if (marker) {
        stats.bytesDropped += chunk.length - cutAt;
        ending = true;
        pipe.push(marker);
      }
    };

    client.on('data', (chunk: Buffer) => onData('request', chunk));
    upstream.on('data', (chunk: Buffer) => onData('response', chunk));
    client.on('end', () => (ending || blackHoled ? finish('destroy') : toServer.push({ kind: 'end' })));
    // A black-holed connection never hears of the server's close either.
    upstream.on('end', () => blackHoled || toClient.push({ kind: 'end' }));
    // The client is gone: nobody is left to read the reply.
    client.on('close', () => finish('destroy'));
    upstream.on('error', () => {
      if (!upstreamConnected) stats.faults.upstreamRefused++;
    });
    upstream.on('close', (hadError) => {
      sockets.delete(upstream);
      // Refused or reset by the server: the client sees a reset, after the bytes before it.
      if (!upstreamConnected) finish('reset');
      else if (blackHoled) return;
      else if (hadError) toClient.push({ kind: 'reset' });
      else toClient.push({ kind: 'end' });
    });
    upstream.connect(target.port, target.host, () => {
      upstreamConnected = true;
      toServer.deliver();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    setFaults(next) {
      faults = { ...next };
    },
    setTarget(next) {
      target = next;
    },
    onResponseStart(next) {
      hook = next;
    },
    stats: () => structuredClone(stats),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
