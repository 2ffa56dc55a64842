import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.ts';

/** A raw TCP server; `behaviour` decides what it does with each connection. */
async function tcpServer(behaviour: (socket: Socket) => void): Promise<{ server: Server; port: number; connections: number }> {
  const state = { server: createServer(), port: 0, connections: 0 };
  state.server.on('connection', (socket) => {
    state.connections++;
    socket.on('error', () => {});
    behaviour(socket);
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.port = (state.server.address() as AddressInfo).port;
  return state;
}

/** Connects through the proxy, writes `payload`, and collects what comes back until close. */
function exchange(port: number, payload: Buffer, options: { endAfterWrite?: boolean; wantBytes?: number } = {}) {
  return new Promise<{ received: Buffer; error?: NodeJS.ErrnoException; ended: boolean; ms: number; firstByteMs?: number }>((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let ended = false;
    let firstByteMs: number | undefined;
    let error: NodeJS.ErrnoException | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(payload);
      if (options.endAfterWrite) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      firstByteMs ??= Date.now() - started;
      chunks.push(chunk);
      bytes += chunk.length;
      if (options.wantBytes !== undefined && bytes >= options.wantBytes) socket.destroy();
    });
    socket.on('end', () => (ended = true));
    socket.on('error', (err) => (error = err));
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), ...(error ? { error } : {}), ended, ms: Date.now() - started, ...(firstByteMs === undefined ? {} : { firstByteMs }) }));
  });
}

function httpGet(port: number, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

describe('test helper: the fault-injecting proxy', function () {
  this.timeout(20_000);
  const servers: Array<Server | HttpServer> = [];
  let proxy: FaultProxy | undefined;

  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    for (const server of servers.splice(0)) {
      (server as HttpServer).closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  const echo = async () => {
    const state = await tcpServer((socket) => socket.pipe(socket));
    servers.push(state.server);
    return state;
  };

  it('forwards bytes unchanged in both directions and counts them', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    const payload = randomBytes(200_000);
    const result = await exchange(proxy.port, payload, { wantBytes: payload.length });
    assert.ok(result.received.equals(payload));
    const stats = proxy.stats();
    assert.equal(stats.connections, 1);
    assert.equal(stats.bytesToServer, payload.length);
    assert.equal(stats.bytesToClient, payload.length);
  });

  it('adds latency and jitter per chunk in each direction, keeping the order', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { latency: { ms: 150, jitterMs: 100 } } });
    // Many small writes, each with its own random delay: they must still arrive in order.
    const pieces = Array.from({ length: 200 }, (_, i) => Buffer.from(`${i};`));
    const expected = Buffer.concat(pieces);
    const result = await new Promise<{ received: Buffer; firstMs: number }>((resolve) => {
      const started = Date.now();
      let firstMs = 0;
      const chunks: Buffer[] = [];
      const socket = connect(proxy!.port, '127.0.0.1', () => {
        for (const piece of pieces) socket.write(piece);
      });
      socket.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) firstMs = Date.now() - started;
        chunks.push(chunk);
        if (Buffer.concat(chunks).length >= expected.length) socket.destroy();
      });
      socket.on('close', () => resolve({ received: Buffer.concat(chunks), firstMs }));
    });
    assert.equal(result.received.toString(), expected.toString());
    // Two one-way trips of at least 150 ms each.
    assert.ok(result.firstMs >= 290, `first echo after ${result.firstMs} ms`);
  });

  it('caps bandwidth in each direction (bytes over elapsed time near the cap)', async () => {
    const bytesPerSecond = 100_000;
    const size = 150_000;
    // Client → server: a sink that notes when it has everything.
    let sinkDone!: () => void;
    const sinkFinished = new Promise<void>((resolve) => (sinkDone = resolve));
    const sink = await tcpServer((socket) => {
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got >= size) sinkDone();
      });
    });
    servers.push(sink.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: sink.port }, faults: { bandwidth: { bytesPerSecond } } });
    let started = Date.now();
    const socket = connect(proxy.port, '127.0.0.1', () => socket.write(randomBytes(size)));
    socket.on('error', () => {});
    await sinkFinished;
    const upRate = size / ((Date.now() - started) / 1000);
    socket.destroy();
    await proxy.close();

    // Server → client: a source that sends `size` bytes on connect.
    const source = await tcpServer((s) => s.end(randomBytes(size)));
    servers.push(source.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: source.port }, faults: { bandwidth: { bytesPerSecond } } });
    started = Date.now();
    const down = await exchange(proxy.port, Buffer.alloc(0));
    const downRate = down.received.length / ((Date.now() - started) / 1000);
    assert.equal(down.received.length, size);
    for (const [direction, rate] of [['up', upRate], ['down', downRate]] as const) {
      assert.ok(rate > bytesPerSecond * 0.8 && rate < bytesPerSecond * 1.15, `${direction}: ${Math.round(rate)} B/s against a cap of ${bytesPerSecond}`);
    }
  });

  it('resets mid-request after exactly N client→server bytes (client sees ECONNRESET)', async () => {
    let serverGot = 0;
    let serverSawReset = false;
    const sink = await tcpServer((socket) => {
      socket.on('data', (chunk: Buffer) => (serverGot += chunk.length));
      socket.on('error', (err: NodeJS.ErrnoException) => (serverSawReset = err.code === 'ECONNRESET'));
    });
    servers.push(sink.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: sink.port }, faults: { resetMidRequest: { afterBytes: 1000 } } });
    const result = await exchange(proxy.port, randomBytes(10_000));
    assert.equal(result.error?.code, 'ECONNRESET');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(serverGot, 1000);
    assert.ok(serverSawReset, 'the server side is reset too');
    assert.equal(proxy.stats().faults.resetMidRequest, 1);
    assert.equal(proxy.stats().bytesToServer, 1000);
  });

  it('resets mid-response after exactly N server→client bytes', async () => {
    const source = await tcpServer((socket) => socket.end(randomBytes(50_000)));
    servers.push(source.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: source.port }, faults: { resetMidResponse: { afterBytes: 2000 } } });
    const result = await exchange(proxy.port, Buffer.from('hello'));
    assert.equal(result.error?.code, 'ECONNRESET');
    assert.equal(result.received.length, 2000);
    assert.equal(proxy.stats().faults.resetMidResponse, 1);
  });

  it('draws N per exchange from a range', async () => {
    const source = await tcpServer((socket) => socket.end(randomBytes(5000)));
    servers.push(source.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: source.port }, seed: 3, faults: { resetMidResponse: { afterBytes: [100, 4000] } } });
    const sizes = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const result = await exchange(proxy.port, Buffer.from('go'));
      assert.equal(result.error?.code, 'ECONNRESET');
      assert.ok(result.received.length >= 100 && result.received.length <= 4000, `${result.received.length} bytes`);
      sizes.add(result.received.length);
    }
    assert.ok(sizes.size >= 6, `N varies: ${[...sizes].join(', ')}`);
  });

  it('closes with a FIN after N bytes in both directions together', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { closeAfter: { bytes: 1500 } } });
    const result = await exchange(proxy.port, randomBytes(1000));
    assert.equal(result.error, undefined);
    assert.ok(result.ended, 'the client sees an orderly end');
    // 1000 bytes up, then only 500 of the echo come back.
    assert.equal(result.received.length, 500);
    const stats = proxy.stats();
    assert.equal(stats.bytesToServer + stats.bytesToClient, 1500);
    assert.equal(stats.faults.closeAfter, 1);
  });

  it('black-holes connections: accepted, read, never forwarded or answered; new ones work after healing', async () => {
    const http: HttpServer = createHttpServer((_req, res) => res.end('ok'));
    servers.push(http);
    let serverConnections = 0;
    http.on('connection', () => serverConnections++);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: (http.address() as AddressInfo).port }, faults: { blackHole: true } });
    const started = Date.now();
    await assert.rejects(httpGet(proxy.port, '/', 600), (err: NodeJS.ErrnoException) => err.code === 'ETIMEDOUT');
    assert.ok(Date.now() - started >= 550);
    assert.equal(serverConnections, 0, 'the server never saw the connection');
    assert.ok(proxy.stats().bytesDropped > 0, 'the request was read and thrown away');

    proxy.setFaults({});
    assert.deepEqual(await httpGet(proxy.port, '/'), { status: 200, body: 'ok' });
    assert.equal(proxy.stats().faults.blackHoled, 1);
  });

  it('black-holes an open connection when switched on while it runs', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    const socket = connect(proxy.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write('before;');
    await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.setFaults({ blackHole: true });
    socket.write('during;');
    await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.setFaults({});
    socket.write('after;');
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    assert.equal(Buffer.concat(received).toString(), 'before;', 'the connection stays dead after healing');
  });

  it('slices traffic into tiny writes, delivered intact', async () => {
    const reads: number[] = [];
    let got = Buffer.alloc(0);
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const payload = randomBytes(3000);
    const sink = await tcpServer((socket) =>
      socket.on('data', (chunk: Buffer) => {
        reads.push(chunk.length);
        got = Buffer.concat([got, chunk]);
        if (got.length >= payload.length) done();
      }),
    );
    servers.push(sink.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: sink.port }, faults: { slice: { maxBytes: 4 } } });
    const socket = connect(proxy.port, '127.0.0.1', () => socket.write(payload));
    await finished;
    socket.destroy();
    assert.ok(got.equals(payload));
    // Each write is 1–4 bytes; the kernel may still merge a few, so most reads must be tiny.
    const tiny = reads.filter((n) => n <= 4).length;
    assert.ok(tiny >= reads.length * 0.9 && reads.length >= payload.length / 4, `${reads.length} reads, ${tiny} of ≤ 4 bytes`);
  });

  it('applies faults set while a keep-alive connection is open, counting N from its next exchange', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    const socket = connect(proxy.port, '127.0.0.1');
    let echoed = 0;
    socket.on('data', (chunk: Buffer) => (echoed += chunk.length));
    const error = new Promise<NodeJS.ErrnoException>((resolve) => socket.on('error', resolve));
    socket.write(randomBytes(5000));
    while (echoed < 5000) await new Promise((resolve) => setTimeout(resolve, 10));
    proxy.setFaults({ resetMidRequest: { afterBytes: 100 } });
    socket.write(randomBytes(1000));
    assert.equal((await error).code, 'ECONNRESET');
    assert.equal(proxy.stats().bytesToServer, 5100);
  });

  it('fires a fault on about `probability` of exchanges, also within one keep-alive connection', async () => {
    const { port } = await echo();
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, seed: 7, faults: { resetMidRequest: { afterBytes: 10, probability: 0.5 } } });
    let resets = 0;
    for (let i = 0; i < 40; i++) {
      const result = await exchange(proxy.port, randomBytes(100), { wantBytes: 100 });
      if (result.error?.code === 'ECONNRESET') resets++;
      else assert.equal(result.received.length, 100);
    }
    assert.ok(resets >= 10 && resets <= 30, `${resets} of 40 connections reset`);
    assert.equal(proxy.stats().faults.resetMidRequest, resets);

    // One keep-alive connection, many exchanges: the dice are rolled per exchange, not once.
    proxy.setFaults({ resetMidResponse: { afterBytes: 50, probability: 0.2 } });
    const socket = connect(proxy.port, '127.0.0.1');
    let echoed = 0;
    socket.on('data', (chunk: Buffer) => (echoed += chunk.length));
    let reset = false;
    socket.on('error', () => (reset = true));
    let completed = 0;
    for (let i = 0; i < 40 && !reset; i++) {
      socket.write(randomBytes(100));
      while (echoed < (i + 1) * 100 && !reset) await new Promise((resolve) => setTimeout(resolve, 2));
      if (!reset) completed++;
    }
    assert.ok(reset, 'some exchange of the long connection was reset');
    assert.ok(completed >= 1, 'earlier exchanges on it went through');
  });

  it('holds a reply in onResponseStart, then forwards or drops it', async () => {
    let handled = 0;
    const http: HttpServer = createHttpServer((_req, res) => {
      handled++;
      res.end('committed');
    });
    servers.push(http);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: (http.address() as AddressInfo).port } });
    const heads: string[] = [];
    proxy.onResponseStart(async ({ requestHead, responseHead }) => {
      heads.push(`${requestHead.split('\r\n')[0]!} → ${responseHead.split('\r\n')[0]!}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return requestHead.startsWith('GET /drop') ? 'drop' : 'forward';
    });
    const started = Date.now();
    assert.deepEqual(await httpGet(proxy.port, '/keep'), { status: 200, body: 'committed' });
    assert.ok(Date.now() - started >= 290, 'the reply waited for the hook');
    await assert.rejects(httpGet(proxy.port, '/drop'), (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET');
    assert.equal(handled, 2, 'the server answered both; the client saw only one answer');
    assert.deepEqual(heads, ['GET /keep HTTP/1.1 → HTTP/1.1 200 OK', 'GET /drop HTTP/1.1 → HTTP/1.1 200 OK']);
    assert.equal(proxy.stats().faults.responsesDropped, 1);
  });

  it('holds a reply while the server dies, and the server close does not overtake the verdict', async () => {
    const sockets: Socket[] = [];
    const source = await tcpServer((socket) => {
      sockets.push(socket);
      socket.on('data', () => socket.write('reply'));
    });
    servers.push(source.server);
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: source.port } });
    proxy.onResponseStart(async () => {
      // "kill" the server after it answered: its socket goes away while the reply is held.
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      return 'reset';
    });
    const result = await exchange(proxy.port, Buffer.from('request'));
    assert.equal(result.received.length, 0);
    assert.equal(result.error?.code, 'ECONNRESET');
  });

  it('answers a connection with a reset when the target refuses it, and follows setTarget', async () => {
    const closed = await tcpServer(() => {});
    const deadPort = closed.port;
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: deadPort } });
    const refused = await exchange(proxy.port, Buffer.from('x'));
    assert.equal(refused.error?.code, 'ECONNRESET');
    assert.equal(proxy.stats().faults.upstreamRefused, 1);

    const { port } = await echo();
    proxy.setTarget({ host: '127.0.0.1', port });
    const result = await exchange(proxy.port, Buffer.from('back'), { wantBytes: 4 });
    assert.equal(result.received.toString(), 'back');
  });
});
