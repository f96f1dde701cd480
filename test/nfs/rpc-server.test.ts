/**
 * The RPC server over real TCP sockets on 127.0.0.1 (protocols/nfs/rpc-server.ts with the NFSv4
 * program and the NOTSUPP stub): every rejection a client can meet, fragment reassembly across
 * TCP segments, out-of-order replies, per-connection bounds and backpressure, and that nothing
 * a client sends stops the server answering others.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient, callRecord, startServer } from './helpers.ts';
import { nfs4Program, notSupportedDispatcher } from '../../protocols/nfs/nfs4-program.ts';
import type { RpcProgram, RpcProcedure, RpcServer } from '../../protocols/nfs/rpc-server.ts';
import { AUTH_FLAVOR, AUTH_STAT } from '../../protocols/nfs/rpc.ts';
import { frameRecord } from '../../protocols/nfs/record-marking.ts';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { XdrReader } from '../../protocols/nfs/xdr.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const PUTROOTFH_GETATTR = hex('00000000 00000000 00000002 00000018 00000009 00000002 0000001a 00000002');

let server: RpcServer | undefined;
const clients: RpcClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.close();
  server = undefined;
});

async function start(opts: Parameters<typeof startServer>[0] = {}): Promise<number> {
  const s = await startServer(opts);
  server = s.server;
  return s.port;
}
async function client(port: number): Promise<RpcClient> {
  const c = await RpcClient.connect(port);
  clients.push(c);
  return c;
}

/** A test program (0x20000001 v1): 1 waits for `release`, 2 answers at once, 3 a 64 KiB reply by reference, 4 throws. */
const TEST_PROG = 0x2000_0001;
function testProgram(): { program: RpcProgram; release: () => void } {
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  const big = Buffer.alloc(64 * 1024, 0x5a);
  const procs = new Map<number, RpcProcedure>([
    [1, async () => {
      await gate;
      return { kind: 'success', encode: (w) => void w.u32(1) };
    }],
    [2, () => ({ kind: 'success', encode: (w) => void w.u32(2) })],
    [3, () => ({ kind: 'success', encode: (w) => void w.opaque(big) })],
    [4, () => {
      throw new Error('boom');
    }],
  ]);
  return { program: { prog: TEST_PROG, versions: new Map([[1, { procedures: procs }]]) }, release: () => release() };
}

describe('RPC rejections over TCP', () => {
  it('answers NULL, and each rejection with its reply', async () => {
    const port = await start();
    const c = await client(port);
    const none = { flavor: AUTH_FLAVOR.NONE, body: Buffer.alloc(0) };
    expect((await c.call(1, callRecord({ xid: 1, proc: 0, cred: none }))).reply).toEqual({ kind: 'success' });
    expect((await c.call(2, callRecord({ xid: 2, proc: 0, rpcvers: 3 }))).reply).toEqual({ kind: 'rpc_mismatch', low: 2, high: 2 });
    expect((await c.call(3, callRecord({ xid: 3, prog: 100005, proc: 0 }))).reply).toEqual({ kind: 'prog_unavail' });
    expect((await c.call(4, callRecord({ xid: 4, vers: 3, proc: 0 }))).reply).toEqual({ kind: 'prog_mismatch', low: 4, high: 4 });
    expect((await c.call(5, callRecord({ xid: 5, proc: 7 }))).reply).toEqual({ kind: 'proc_unavail' });
    expect((await c.call(6, callRecord({ xid: 6, proc: 1, args: hex('0000') }))).reply).toEqual({ kind: 'garbage_args' });
    const gss = { flavor: AUTH_FLAVOR.RPCSEC_GSS, body: hex('00000001 00000000 00000000 00000001 00000000') };
    expect((await c.call(7, callRecord({ xid: 7, proc: 0, cred: gss }))).reply).toEqual({ kind: 'auth_error', stat: AUTH_STAT.BADCRED });
    expect((await c.call(8, callRecord({ xid: 8, proc: 1, cred: none, args: PUTROOTFH_GETATTR }))).reply).toEqual({ kind: 'auth_error', stat: AUTH_STAT.TOOWEAK });
    // The connection survived all of it.
    expect((await c.call(9, callRecord({ xid: 9, proc: 0 }))).reply).toEqual({ kind: 'success' });
  });

  it('answers a COMPOUND through the stub: NFS4ERR_NOTSUPP for PUTROOTFH, the tag echoed', async () => {
    const port = await start();
    const c = await client(port);
    const args = Buffer.concat([hex('00000003 61626300'), PUTROOTFH_GETATTR.subarray(4)]);
    const r = await c.call(10, callRecord({ xid: 10, proc: 1, args }));
    expect(r.reply).toEqual({ kind: 'success' });
    const x = new XdrReader(r.results);
    expect(x.u32()).toBe(NFS4ERR.NOTSUPP);
    expect(x.opaque(100).toString()).toBe('abc');
    expect([x.u32(), x.u32(), x.u32()]).toEqual([1, OP.PUTROOTFH, NFS4ERR.NOTSUPP]);
    // Minor version 7: MINOR_VERS_MISMATCH, empty resarray.
    const mv = await c.call(11, callRecord({ xid: 11, proc: 1, args: hex('00000000 00000007 00000000') }));
    expect(mv.results.toString('hex')).toBe(hex('00002725 00000000 00000000').toString('hex'));
  });
});

describe('framing', () => {
  it('reassembles a call split into fragments and written across TCP segments', async () => {
    const port = await start();
    const c = await client(port);
    c.socket.setNoDelay(true);
    const wire = frameRecord(callRecord({ xid: 21, proc: 1, args: PUTROOTFH_GETATTR }), 7);
    const p = c.reply(21);
    for (let i = 0; i < wire.length; i += 5) {
      c.socket.write(wire.subarray(i, i + 5));
      await sleep(2);
    }
    const r = await p;
    expect(new XdrReader(r.results).u32()).toBe(NFS4ERR.NOTSUPP);
  });

  it('closes a connection that announces a record over the bound; others are unaffected', async () => {
    const port = await start({ maxRecordBytes: 4096 });
    const bad = await client(port);
    const good = await client(port);
    bad.socket.write(hex('80100000'));
    await expect.poll(() => bad.closed, { timeout: 5000 }).toBe(true);
    expect((await good.call(22, callRecord({ xid: 22, proc: 0 }))).reply).toEqual({ kind: 'success' });
  });

  it('answers the calls sent before a refused record, then closes the connection', async () => {
    const t = testProgram();
    const port = await start({ programs: [t.program], maxRecordBytes: 4096 });
    const c = await client(port);
    const slow = c.reply(25);
    const fast = c.reply(26);
    c.socket.write(
      Buffer.concat([
        frameRecord(callRecord({ xid: 25, prog: TEST_PROG, vers: 1, proc: 1 })),
        frameRecord(callRecord({ xid: 26, prog: TEST_PROG, vers: 1, proc: 2 })),
        hex('80100000'),
      ]),
    );
    expect((await fast).results.readUInt32BE(0)).toBe(2);
    expect(c.closed).toBe(false);
    t.release();
    expect((await slow).results.readUInt32BE(0)).toBe(1);
    await expect.poll(() => c.closed, { timeout: 5000 }).toBe(true);
  });

  it('closes the connection whose half-sent record passes the server-wide budget', async () => {
    const port = await start({ maxPartialBytes: 100 * 1024 });
    const a = await client(port);
    const b = await client(port);
    // 60 KiB records (below the pooled size: what was received is what is held).
    a.socket.write(Buffer.concat([hex('8000f000'), Buffer.alloc(55 * 1024)]));
    await expect.poll(() => server?.partialBytes, { timeout: 5000 }).toBe(55 * 1024);
    b.socket.write(Buffer.concat([hex('8000f000'), Buffer.alloc(55 * 1024)]));
    await expect.poll(() => b.closed, { timeout: 5000 }).toBe(true);
    expect(a.closed).toBe(false);
    expect(server?.partialBytes).toBe(55 * 1024);
    a.close();
    await expect.poll(() => server?.partialBytes, { timeout: 5000 }).toBe(0);
    const c = await client(port);
    expect((await c.call(24, callRecord({ xid: 24, proc: 0 }))).reply).toEqual({ kind: 'success' });
  });

  it('a large record received in place counts its whole pooled buffer from its header on: bare headers cannot make the server reserve past the budget', async () => {
    const port = await start({ maxPartialBytes: 1536 * 1024 });
    const a = await client(port);
    const b = await client(port);
    a.socket.write(hex('80100000'));
    await expect.poll(() => server?.partialBytes, { timeout: 5000 }).toBe(1024 * 1024);
    b.socket.write(hex('80100000'));
    await expect.poll(() => b.closed, { timeout: 5000 }).toBe(true);
    expect(a.closed).toBe(false);
    expect(server?.partialBytes).toBe(1024 * 1024);
    a.close();
    await expect.poll(() => server?.partialBytes, { timeout: 5000 }).toBe(0);
  });

  it('a client stuck in the middle of a record does not stall another', async () => {
    const port = await start();
    const stuck = await client(port);
    stuck.socket.write(Buffer.concat([hex('800003e8'), Buffer.alloc(10)]));
    const other = await client(port);
    expect((await other.call(23, callRecord({ xid: 23, proc: 0 }))).reply).toEqual({ kind: 'success' });
    expect(server?.stats().some((s) => s.partialRecordBytes === 10)).toBe(true);
  });
});

describe('receive in place (reads into the connection\'s buffers)', () => {
  it('a 1 MiB record lands in a pooled slab; small records are copied out of the reused read buffer, intact after later reads', async () => {
    const seen: Buffer[] = [];
    const program: RpcProgram = {
      prog: TEST_PROG,
      versions: new Map([[1, { procedures: new Map<number, RpcProcedure>([[9, (call) => {
        seen.push(call.args);
        return { kind: 'success', encode: (w) => void w.u32(call.args.length) };
      }]]) }]]),
    };
    const port = await start({ programs: [program] });
    const c = await client(port);
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i);
    const small = Array.from({ length: 40 }, (_, i) => Buffer.alloc(64 + 4 * i, i + 1));
    // Small calls before and after the big one, all pipelined on one connection.
    const calls = [
      ...small.slice(0, 20).map((a, i) => c.call(100 + i, callRecord({ xid: 100 + i, prog: TEST_PROG, vers: 1, proc: 9, args: a }))),
      c.call(200, callRecord({ xid: 200, prog: TEST_PROG, vers: 1, proc: 9, args: big })),
      ...small.slice(20).map((a, i) => c.call(120 + i, callRecord({ xid: 120 + i, prog: TEST_PROG, vers: 1, proc: 9, args: a }))),
    ];
    const replies = await Promise.all(calls);
    expect(replies.map((r) => r.results.readUInt32BE(0))).toEqual([...small.slice(0, 20), big, ...small.slice(20)].map((a) => a.length));
    // Every record as sent, read after all the others went through the same read buffer.
    expect(seen.length).toBe(41);
    const got = seen.find((a) => a.length === big.length)!;
    expect(got.equals(big)).toBe(true);
    // The big record is a view of a pooled slab (record-buffers.ts: 1 MiB + 64 KiB), not of a socket read.
    expect(got.buffer.byteLength).toBe(1024 * 1024 + 64 * 1024);
    for (const a of small) expect(seen.some((x) => x.equals(a))).toBe(true);
  });
});

describe('concurrency and bounds', () => {
  it('replies out of order: a slow call does not hold back a fast one on the same connection', async () => {
    const t = testProgram();
    const port = await start({ programs: [t.program] });
    const c = await client(port);
    const slow = c.call(31, callRecord({ xid: 31, prog: TEST_PROG, vers: 1, proc: 1 }));
    const fast = await c.call(32, callRecord({ xid: 32, prog: TEST_PROG, vers: 1, proc: 2 }));
    expect(fast.results.readUInt32BE(0)).toBe(2);
    t.release();
    expect((await slow).results.readUInt32BE(0)).toBe(1);
    expect(c.order).toEqual([32, 31]);
  });

  it('a procedure that throws gets SYSTEM_ERR and the connection goes on', async () => {
    const t = testProgram();
    const port = await start({ programs: [t.program] });
    const c = await client(port);
    expect((await c.call(41, callRecord({ xid: 41, prog: TEST_PROG, vers: 1, proc: 4 }))).reply).toEqual({ kind: 'system_err' });
    expect((await c.call(42, callRecord({ xid: 42, prog: TEST_PROG, vers: 1, proc: 2 }))).reply).toEqual({ kind: 'success' });
  });

  it('a client that never reads its replies does not grow server memory; it gets them all once it reads', async () => {
    const t = testProgram();
    const maxBufferedReplyBytes = 256 * 1024;
    const maxOutstanding = 8;
    const port = await start({ programs: [t.program], maxBufferedReplyBytes, maxOutstanding });
    const calls = 1000; // 1000 × 64 KiB = 64 MiB of replies if nothing pushed back
    const sock = connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    const wire = Buffer.concat(Array.from({ length: calls }, (_, i) => frameRecord(callRecord({ xid: 1000 + i, prog: TEST_PROG, vers: 1, proc: 3 }))));
    sock.write(wire);
    let peak = 0;
    for (let i = 0; i < 40; i++) {
      await sleep(25);
      for (const s of server?.stats() ?? []) peak = Math.max(peak, s.writableLength + s.backlog * 64);
    }
    const st = server?.stats()[0];
    expect(st?.readingPaused).toBe(true);
    // At most the buffered bound plus the replies of the calls running when it was reached.
    expect(peak).toBeLessThanOrEqual(maxBufferedReplyBytes + (maxOutstanding + 1) * (64 * 1024 + 64));
    // Now read: every reply arrives.
    let bytes = 0;
    sock.on('data', (d: Buffer) => (bytes += d.length));
    sock.resume();
    await expect.poll(() => bytes, { timeout: 20_000, interval: 50 }).toBe(calls * (4 + 24 + 4 + 64 * 1024));
    sock.destroy();
  });

  it('closes idle connections', async () => {
    const port = await start({ idleTimeoutMs: 200 });
    const c = await client(port);
    expect((await c.call(51, callRecord({ xid: 51, proc: 0 }))).reply).toEqual({ kind: 'success' });
    await expect.poll(() => c.closed, { timeout: 5000 }).toBe(true);
  });

  it('serves many concurrent connections', async () => {
    const port = await start();
    const cs = await Promise.all(Array.from({ length: 40 }, () => client(port)));
    const replies = await Promise.all(
      cs.flatMap((c, i) => Array.from({ length: 10 }, (_, j) => c.call(i * 100 + j, callRecord({ xid: i * 100 + j, proc: 1, args: PUTROOTFH_GETATTR })))),
    );
    expect(replies).toHaveLength(400);
    for (const r of replies) expect(new XdrReader(r.results).u32()).toBe(NFS4ERR.NOTSUPP);
  });
});

describe('nfs4Program options', () => {
  it('accepts AUTH_NONE for COMPOUND when configured', async () => {
    const port = await start({ programs: [nfs4Program(notSupportedDispatcher, { allowAuthNone: true })] });
    const c = await client(port);
    const none = { flavor: AUTH_FLAVOR.NONE, body: Buffer.alloc(0) };
    expect((await c.call(61, callRecord({ xid: 61, proc: 1, cred: none, args: PUTROOTFH_GETATTR }))).reply).toEqual({ kind: 'success' });
  });
});

