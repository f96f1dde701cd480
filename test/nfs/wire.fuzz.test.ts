/**
 * Property tests for the NFS wire decoders (record marking, RPC call, COMPOUND and every
 * operation's arguments, fattr4 values): random bytes and mutations of valid records (hand-built
 * vectors and traffic captured from libnfs) must give a value or the codec's own error, in
 * bounded time, holding no more than the input's bytes: every Buffer in a decoded value is a view
 * of the input and every array is shorter than the input has words. Then the same through the
 * real TCP server, which must keep answering.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { RecordMarkingError, RecordParser, frameRecord } from '../../protocols/nfs/record-marking.ts';
import { decodeCall } from '../../protocols/nfs/rpc.ts';
import { decodeCompound, encodeCompoundRes, runCompound, type CompoundDecode } from '../../protocols/nfs/compound.ts';
import { decodeAttrValues } from '../../protocols/nfs/fattr4.ts';
import { NFS4ERR } from '../../protocols/nfs/nfs4-types.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';
import { RpcClient, callRecord, startServer } from './helpers.ts';

/** NFS_FUZZ_RUNS=N for a longer run than the suite's. */
const RUNS = Number(process.env.NFS_FUZZ_RUNS ?? 1000);
/** Superlinear work guard (not a speed target): the best of three calls on inputs up to 64 KiB. */
const MAX_CALL_MS = 50;

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const STATEID = '00000001 0a0b0c0d0e0f101112131415';

/**
 * Captured client traffic, split into its records: libnfs 4.0 — a mount refused by the stub (NULL,
 * SETCLIENTID), and mounts, listings, a read and a missing path served by the toy dispatcher —
 * and the Linux 6.1 kernel client's 4.0, 4.1 and 4.2 mounts running the kvm harness's workload
 * against the toy (two of each distinct COMPOUND shape under 4 KiB: EXCHANGE_ID, CREATE_SESSION,
 * SEQUENCE, OPEN with its create modes, CREATE, RENAME, SETATTR, READDIR, WRITE, …).
 */
const CAPTURED: Buffer[] = ['libnfs-mount-4.0.hex', 'libnfs-4.0-session.hex', 'linux-6.1-nfs4.0-4.1-4.2.hex'].flatMap((f) =>
  new RecordParser().push(hex(readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8'))),
);

/** COMPOUND argument bodies covering every codec (HAND_BUILT of them written here, the rest captured). */
const HAND_BUILT = 12;
const COMPOUNDS: Buffer[] = [
  '00000000 00000000 00000002 00000018 00000009 00000002 0000001a 00000002',
  '00000002 72640000 00000001 00000002 00000016 00000004 01020304 00000019' + STATEID + '0000000000001000 00001000',
  '00000000 00000002 00000001 00000026' + STATEID + '0000000000000000 00000002 00000005 68656c6c6f000000',
  '00000000 00000000 00000001 00000012 00000007 00000003 00000000 000000000000002a 00000005 6f776e6572000000 00000001 00000003 0102030405060708 00000001 00000010 00000008 00000000000001a4 00000000 00000001 66000000',
  '00000000 00000001 00000003 00000035 00112233445566778899aabbccddeeff 00000005 00000000 00000000 00000001 0000000c 00000002 00000000 0000000000000000 ffffffffffffffff 00000001 00000000' + STATEID + '00000000 0000000000000007 00000002 6c6f0000 00000022' + STATEID + '00000002 00000010 00000002 0000000c 0000000000000400 000001a4',
  '00000000 00000001 00000001 0000002a 0102030405060708 00000004 61626364 00000001 00000000 00000001 00000003 6f726700 00000004 6e616d65 0000000000000001 00000002',
  '00000000 00000001 00000001 0000002b 0000000000000001 00000001 00000001 00000000 00100400 00100400 00001000 00000010 00000040 00000000 00000000 00001000 00001000 00000000 00000002 00000001 00000000 40000000 00000001 00000001 00000000 00000001 6d000000 00000000 00000000 00000000',
  '00000000 00000002 00000004 00000048 00000006 757365722e6b0000 00000049 00000000 00000001 6b000000 00000001 76000000 0000004a 0000000000000000 00001000 0000004b 00000001 6b000000',
  '00000000 00000000 00000004 0000001a 0000000000000000 0000000000000000 00002000 00008000 00000002 00100000 00000000 0000001d 00000001 61000000 00000001 62000000 00000006 00000005 00000002 2f780000 00000001 6c000000 00000000 00000000 0000001c 00000001 61000000',
  // Every remaining operation with plausible arguments, per minor version.
  '00000000 00000000 00000016 00000003 0000003f 00000004 00000001 00000001 0a0b0c0d0e0f101112131415 00000005 0000000000000000 00001000 00000008 00000001 0a0b0c0d0e0f101112131415 0000000a 0000000b 00000007 6e65776c696e6b00 0000000d 00000001 0000000000000000 0000000000000064 0000000000000005 00000001 6f000000 0000000e 00000001 00000002 00000001 0a0b0c0d0e0f101112131415 0000000000000000 0000000000000064 00000010 00000011 00000001 00000010 00000008 000000000000000c 00000025 00000001 00000010 00000008 000000000000000c 00000014 00000001 0a0b0c0d0e0f101112131415 00000001 00000015 00000001 0a0b0c0d0e0f101112131415 00000002 00000001 00000000 00000017 0000001b 0000001e 0000000000000005 00000020 0000001f 00000021 00000004 6e616d65 00000027 0000000000000005 00000002 6c6f0000 00000024 0000000000000005 0102030405060708 00000023 0102030405060708 00000004 69646964 40000000 00000003 74637000 0000000b 312e322e332e342e302e3100 00000001',
  '00000000 00000001 00000007 00000028 40000000 00000001 00000000 00000029 00112233445566778899aabbccddeeff 00000003 00000000 0000002c 00112233445566778899aabbccddeeff 0000002d 00000001 0a0b0c0d0e0f101112131415 00000034 00000000 00000039 0000000000000005 0000003a 00000000',
  '00000000 00000002 00000001 00000045 00000001 0a0b0c0d0e0f101112131415 0000000000001000 00000001',
]
  .map(hex)
  .concat(CAPTURED.flatMap((rec) => {
    const d = decodeCall(rec);
    return d.kind === 'call' && d.call.proc === 1 ? [d.call.args] : [];
  }));

/** Whole call records: the COMPOUNDs wrapped in RPC headers, plus the captured ones. */
const RECORDS: Buffer[] = [...COMPOUNDS.slice(0, HAND_BUILT).map((args, i) => callRecord({ xid: i + 1, proc: 1, args })), ...CAPTURED];

/** Random edits of a seed: byte sets, u32 words set to edge values, inserts, deletes, truncation. */
function mutated(seeds: Buffer[]): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ k: fc.constant('byte' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('word' as const), at: fc.nat(), v: fc.constantFrom(0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 10044, 1024, 16, 128) }),
    fc.record({ k: fc.constant('insert' as const), at: fc.nat(), v: fc.uint8Array({ maxLength: 12 }) }),
    fc.record({ k: fc.constant('delete' as const), at: fc.nat(), v: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ k: fc.constant('truncate' as const), at: fc.nat(), v: fc.constant(0) }),
  );
  return fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([i, edits]) => {
    let b = Buffer.from(seeds[i] as Buffer);
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % b.length;
      if (e.k === 'byte' && b.length > 0) b[at] = e.v;
      else if (e.k === 'word' && b.length >= 4) b.writeUInt32BE(e.v >>> 0, Math.min(at & ~3, b.length - 4));
      else if (e.k === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.v), b.subarray(at)]);
      else if (e.k === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.v)]);
      else if (e.k === 'truncate') b = b.subarray(0, at);
    }
    return b;
  });
}

const randomBytes = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 256 }).map((u) => Buffer.from(u)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }).map((u) => Buffer.from(u)) },
  // Word-aligned small integers: the shapes XDR decoders take for lengths and discriminants.
  { weight: 2, arbitrary: fc.array(fc.oneof(fc.integer({ min: 0, max: 80 }), fc.constantFrom(0xffffffff, 0x80000000, 10044)), { maxLength: 64 }).map((ws) => {
    const b = Buffer.alloc(ws.length * 4);
    ws.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4));
    return b;
  }) },
);

/**
 * Everything a decoded value holds is paid for by the input: Buffers are views of it (or empty),
 * arrays no longer than its words, strings no longer than its bytes.
 */
function expectBoundedBy(value: unknown, input: Buffer, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'string') expect(value.length).toBeLessThanOrEqual(input.length);
    return;
  }
  if (seen.has(value)) return;
  seen.add(value);
  if (Buffer.isBuffer(value)) {
    if (value.length > 0) expect(value.buffer === input.buffer, 'a Buffer that is not a view of the input').toBe(true);
    return;
  }
  if (Array.isArray(value)) expect(value.length).toBeLessThanOrEqual(input.length / 4 + 1);
  // `reason` is a diagnostic of constant size, not data taken from the input.
  for (const [k, v] of Object.entries(value)) if (k !== 'reason') expectBoundedBy(v, input, seen);
}

function timed(fn: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

describe('record marking', () => {
  it('any byte stream, cut anywhere: records, or an error once a record passes the bound; never a throw, never more held than the bound', () => {
    fc.assert(
      fc.property(fc.oneof(randomBytes, mutated(RECORDS.map((r) => frameRecord(r, 13)))), fc.array(fc.nat(), { maxLength: 8 }), (stream, cuts) => {
        const p = new RecordParser(2048);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        let out = 0;
        for (const c of [...points, stream.length]) {
          for (const r of p.push(stream.subarray(prev, c))) out += r.length;
          prev = c;
          expect(p.buffered).toBeLessThanOrEqual(2048);
        }
        if (p.error) expect(p.error).toBeInstanceOf(RecordMarkingError);
        expect(out).toBeLessThanOrEqual(stream.length);
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('RPC call decoder', () => {
  it('gives a call, a rejection or a drop for any record, holding only views of it', () => {
    fc.assert(
      fc.property(fc.oneof(randomBytes, mutated(RECORDS)), (rec) => {
        const d = decodeCall(rec);
        expect(['call', 'reject', 'drop']).toContain(d.kind);
        if (d.kind === 'call') {
          expect(d.call.args.buffer === rec.buffer || d.call.args.length === 0).toBe(true);
          expect(d.call.rawCred.body.length).toBeLessThanOrEqual(400);
        }
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('COMPOUND decoder', () => {
  it('decodes every seed whole: the hand-built vectors and the captured libnfs COMPOUNDs are valid traffic', () => {
    expect(COMPOUNDS.length).toBeGreaterThanOrEqual(HAND_BUILT + 15);
    for (const args of COMPOUNDS) {
      const d = decodeCompound(args);
      expect(d.kind).toBe('ok');
      if (d.kind === 'ok') expect(d.args.stop).toBeUndefined();
    }
  });

  const check = (args: Buffer): CompoundDecode => {
    const d = decodeCompound(args);
    expect(['ok', 'refuse', 'garbage']).toContain(d.kind);
    if (d.kind === 'ok') {
      expect(d.args.ops.length).toBeLessThanOrEqual(100);
      expectBoundedBy(d.args, args);
      if (d.args.stop) expect(d.args.stop.status).not.toBe(NFS4ERR.OK);
    }
    return d;
  };

  it('random and mutated COMPOUNDs: a value, bounded by the input, for every operation decoder', () => {
    fc.assert(fc.property(fc.oneof(randomBytes, mutated(COMPOUNDS)), (args) => void check(args)), { numRuns: runs(RUNS) * 3 });
  });

  it('every operation number with random arguments', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 2 }), randomBytes, (op, minor, body) => {
        const head = new XdrWriter().u32(0).u32(minor).u32(1).u32(op).toBuffer();
        check(Buffer.concat([head, body]));
      }),
      { numRuns: runs(RUNS) * 2 },
    );
  });

  it('decode, run through the stub and encode: a reply for everything, in bounded time', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(randomBytes, mutated(COMPOUNDS)), async (args) => {
        const d = decodeCompound(args);
        if (d.kind !== 'ok') return;
        const res = await runCompound(d.args, (op) => ({ op: op.op, status: NFS4ERR.NOTSUPP }));
        const w = new XdrWriter();
        encodeCompoundRes(w, res);
        expect(w.length).toBeLessThanOrEqual(12 + args.length + 8);
      }),
      { numRuns: runs(RUNS) },
    );
  });

  it('bounded work on large inputs (64 KiB of ops, bitmaps, strings)', () => {
    const many = Buffer.concat([hex('00000000 00000002 00000064'), Buffer.concat(Array.from({ length: 100 }, () => hex('00000009 00000040' + '00'.repeat(256))))]);
    const bigName = Buffer.concat([hex('00000000 00000000 00000001 0000000f 0000ffff'), Buffer.alloc(65535, 0x61), Buffer.alloc(1)]);
    const bigWrite = Buffer.concat([hex('00000000 00000002 00000001 00000026' + STATEID + '0000000000000000 00000000 00010000'), Buffer.alloc(65536)]);
    for (const input of [many, bigName, bigWrite]) {
      expect(timed(() => decodeCompound(input))).toBeLessThan(MAX_CALL_MS);
      expectBoundedBy(check(input), input);
    }
  });
});

describe('fattr4 values', () => {
  it('any mask and values: decoded or a status', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 4 }), fc.oneof(randomBytes, fc.constant(Buffer.alloc(0))), fc.boolean(), (mask, vals, settable) => {
        const d = decodeAttrValues({ mask, vals }, { settable });
        if (!d.ok) expect([NFS4ERR.BADXDR, NFS4ERR.ATTRNOTSUPP, NFS4ERR.INVAL]).toContain(d.status);
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('through the server', () => {
  it('random and mutated streams never stop it answering', async () => {
    const { server, port } = await startServer({ maxRecordBytes: 64 * 1024 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.oneof(randomBytes, mutated(RECORDS.map((r) => frameRecord(r, 17)))), async (stream) => {
          const s = connect(port, '127.0.0.1');
          s.on('error', () => {});
          s.on('data', () => {});
          await new Promise((r) => s.once('connect', r));
          s.write(stream);
          await sleep(1);
          s.destroy();
        }),
        { numRuns: runs(150) },
      );
      const c = await RpcClient.connect(port);
      try {
        expect((await c.call(7, callRecord({ xid: 7, proc: 0 }))).reply).toEqual({ kind: 'success' });
      } finally {
        c.close();
      }
    } finally {
      await server.close();
    }
  });
});
