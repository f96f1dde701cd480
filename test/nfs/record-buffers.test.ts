/**
 * Pooled buffers for records reassembled from several socket reads (record-buffers.ts): the
 * parser copies a split record into a pooled slab, the slab is reused only once given back, and
 * through the real server large WRITEs whose records reuse slabs land intact (each 1 MiB WRITE
 * read back), while a COMPOUND that may keep views of its record (sa_cachethis) never gives it back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameRecord, RecordParser } from '../../protocols/nfs/record-marking.ts';
import { giveBackRecord, pooledRecordSlabs } from '../../protocols/nfs/record-buffers.ts';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from './client41.ts';

const MIB = 1024 * 1024;

describe('record buffers', () => {
  it('a record split across reads is copied into a pooled slab, reused only after it is given back', () => {
    const p = new RecordParser();
    const body = (fill: number): Buffer => Buffer.alloc(300 * 1024, fill);
    const feed = (rec: Buffer): Buffer => {
      const wire = frameRecord(rec, 100 * 1024);
      const out: Buffer[] = [];
      for (let at = 0; at < wire.length; at += 64 * 1024) out.push(...p.push(wire.subarray(at, at + 64 * 1024)));
      expect(out).toHaveLength(1);
      return out[0]!;
    };
    const a = feed(body(1));
    expect(a.equals(body(1))).toBe(true);
    const b = feed(body(2));
    expect(b.buffer).not.toBe(a.buffer);
    expect(a.equals(body(1))).toBe(true);
    const before = pooledRecordSlabs();
    giveBackRecord(a.subarray(40));
    giveBackRecord(a); // twice: still once on the free list
    expect(pooledRecordSlabs()).toBe(before + 1);
    const c = feed(body(3));
    expect(c.buffer).toBe(a.buffer);
    expect(c.equals(body(3))).toBe(true);
    expect(b.equals(body(2))).toBe(true);
    // Small records and records in one read are not pooled: giving them back does nothing.
    giveBackRecord(Buffer.alloc(1024));
    expect(pooledRecordSlabs()).toBe(before);
  });
});

describe('record buffers through the server', () => {
  let stack: NfsStack;
  let c: Nfs41Client;
  beforeAll(async () => {
    stack = await startNfs();
    c = await Nfs41Client.connect(stack.nfsPort);
  }, 60_000);
  afterAll(async () => {
    c?.close();
    await stack?.stop();
  });

  it('1 MiB WRITEs whose records reuse pooled slabs land intact', async () => {
    const o = await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'rb', 'big.bin', { create: 'unchecked', access: 3 }), ops.getfh()]);
    expect(o.status).toBe(NFS4ERR.OK);
    const sid = resultOf(o, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(o, OP.GETFH)!.body!.fh as Buffer;
    const piece = (i: number): Buffer => {
      const b = Buffer.alloc(MIB);
      for (let k = 0; k < MIB; k += 4) b.writeUInt32BE((i * 0x9e3779b1 + k) >>> 0, k);
      return b;
    };
    const N = 12;
    const write = async (i: number, cacheThis: boolean): Promise<void> => {
      const w = await c.raw(1, [c.sequence({ cacheThis }), ops.putfh(fh), ops.write(sid, BigInt(i * MIB), piece(i), 0)]);
      expect(w.status).toBe(NFS4ERR.OK);
    };
    // Replies the slot keeps (sa_cachethis) keep their records: none given back.
    const before = pooledRecordSlabs();
    for (let i = 0; i < 3; i++) await write(i, true);
    expect(pooledRecordSlabs()).toBe(before);
    // As Linux sends WRITEs (not cached): each record's slab is given back and reused by the next.
    for (let i = 3; i < N; i++) await write(i, false);
    expect(pooledRecordSlabs()).toBeGreaterThan(before);
    expect((await c.call([ops.putfh(fh), ops.commit(), ops.close(sid)])).status).toBe(NFS4ERR.OK);
    const disk = readFileSync(join(stack.diskDir, 'big.bin'));
    expect(disk.length).toBe(N * MIB);
    for (let i = 0; i < N; i++) expect(disk.subarray(i * MIB, (i + 1) * MIB).equals(piece(i)), `piece ${i}`).toBe(true);
  }, 60_000);
});
