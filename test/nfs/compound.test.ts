/**
 * COMPOUND decoding, execution order and result encoding (protocols/nfs/compound.ts), per-op
 * codecs (xdr4/) and fattr4 packing (fattr4.ts), against vectors built by hand from the XDR of
 * RFC 7530 / RFC 8881 / RFC 7862 / RFC 8276.
 */
import { describe, expect, it } from 'vitest';
import { CODECS, decodeCompound, encodeCompoundRes, runCompound, type CompoundArgs, type DecodedOp } from '../../protocols/nfs/compound.ts';
import { CLAIM, CREATEMODE4, FATTR4, NF4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { decodeAttrValues, encodeFattr, fattrToBuffer, attrListBytes } from '../../protocols/nfs/fattr4.ts';
import { bitmapAttrs, bitmapOf } from '../../protocols/nfs/xdr4/common.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const STATEID = '00000001 0a0b0c0d0e0f101112131415';

function ok(buf: Buffer): CompoundArgs {
  const d = decodeCompound(buf);
  if (d.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(d)}`);
  return d.args;
}

/** COMPOUND4args: empty tag, minor version, then the ops' bytes. */
function compound(minor: number, ops: string[], numops = ops.length): Buffer {
  const head = new XdrWriter().u32(0).u32(minor).u32(numops).toBuffer();
  return Buffer.concat([head, ...ops.map(hex)]);
}
const u32 = (n: number): string => n.toString(16).padStart(8, '0');
const str = (s: string | Buffer): string => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return u32(b.length) + b.toString('hex') + '00'.repeat((4 - (b.length % 4)) % 4);
};

describe('COMPOUND4args', () => {
  it('decodes PUTROOTFH + GETATTR (type, change, size, mode)', () => {
    const a = ok(hex('00000000 00000000 00000002 00000018 00000009 00000002 0000001a 00000002'));
    expect(a.minorversion).toBe(0);
    expect(a.tag.length).toBe(0);
    expect(a.ops).toEqual([
      { op: OP.PUTROOTFH, args: null },
      { op: OP.GETATTR, args: { request: [0x1a, 2] } },
    ]);
    expect(bitmapAttrs([0x1a, 2])).toEqual([FATTR4.TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.MODE]);
    expect(a.stop).toBeUndefined();
  });

  it('decodes READ args (tag, 4.1)', () => {
    const a = ok(hex('00000002 72640000 00000001 00000001 00000019' + STATEID + '0000000000001000 00001000'));
    expect(a.tag.toString()).toBe('rd');
    const op = a.ops[0] as Extract<DecodedOp, { op: 25 }>;
    expect(op.op).toBe(OP.READ);
    expect(op.args.stateid.seqid).toBe(1);
    expect(op.args.stateid.other.toString('hex')).toBe('0a0b0c0d0e0f101112131415');
    expect(op.args.offset).toBe(0x1000n);
    expect(op.args.count).toBe(4096);
  });

  it('decodes WRITE args with the payload as a view of the record (4.2)', () => {
    const rec = compound(2, ['00000026' + STATEID + '0000000000000000 00000002 00000005 68656c6c6f000000']);
    const a = ok(rec);
    const op = a.ops[0] as Extract<DecodedOp, { op: 38 }>;
    expect(op.args.stable).toBe(2);
    expect(op.args.data.toString()).toBe('hello');
    expect(op.args.data.buffer).toBe(rec.buffer);
  });

  it('decodes OPEN with every createhow4 mode and every claim type', () => {
    const fattr = '00000001 00000000 00000000'; // empty bitmap word, empty attrlist
    const head = '00000012 00000007 00000003 00000000 000000000000002a' + str('owner');
    const hows: [string, number][] = [
      ['00000001 00000000' + '00000001 00000010' + '00000000', CREATEMODE4.UNCHECKED],
      ['00000001 00000001' + fattr, CREATEMODE4.GUARDED],
      ['00000001 00000002 0102030405060708', CREATEMODE4.EXCLUSIVE],
      ['00000001 00000003 0102030405060708' + fattr, CREATEMODE4.EXCLUSIVE4_1],
    ];
    for (const [how, mode] of hows) {
      const a = ok(compound(1, [head + how + '00000000' + str('f')]));
      const op = a.ops[0] as Extract<DecodedOp, { op: 18 }>;
      expect(op.args.create?.mode).toBe(mode);
      expect(op.args.claim).toEqual({ type: CLAIM.NULL, name: 'f' });
      expect(op.args.owner.clientid).toBe(42n);
    }
    const claims: [string, object][] = [
      ['00000000' + str('n'), { type: 0, name: 'n' }],
      ['00000001 00000000', { type: 1, delegateType: 0 }],
      ['00000002' + STATEID + str('n'), { type: 2, name: 'n' }],
      ['00000003' + str('n'), { type: 3, name: 'n' }],
      ['00000004', { type: 4 }],
      ['00000005' + STATEID, { type: 5 }],
      ['00000006', { type: 6 }],
    ];
    for (const [claim, want] of claims) {
      const a = ok(compound(1, [head + '00000000' + claim]));
      expect((a.ops[0] as Extract<DecodedOp, { op: 18 }>).args.claim).toMatchObject(want);
      expect(a.stop).toBeUndefined();
    }
    // opentype 2, createmode 4, claim 7: not this XDR.
    expect(ok(compound(1, [head + '00000002'])).stop?.status).toBe(NFS4ERR.BADXDR);
    expect(ok(compound(1, [head + '00000001 00000004'])).stop?.status).toBe(NFS4ERR.BADXDR);
    expect(ok(compound(1, [head + '00000000 00000007'])).stop?.status).toBe(NFS4ERR.BADXDR);
  });

  it('decodes the session, lock and xattr operations', () => {
    const sid = '00112233445566778899aabbccddeeff';
    const a = ok(
      compound(2, [
        '00000035' + sid + '00000005 00000000 00000000 00000001', // SEQUENCE
        '0000000c 00000002 00000000 0000000000000000 ffffffffffffffff 00000001 00000000' + STATEID + '00000000 0000000000000007' + str('lo'), // LOCK new owner
        '00000049 00000001' + str('user.k') + str('v'), // SETXATTR CREATE
        '00000037 00000002' + STATEID + STATEID, // TEST_STATEID
        '0000003c' + STATEID + STATEID + '0000000000000000 0000000000000000 0000000000000000 00000000 00000001 00000000', // COPY
      ]),
    );
    expect(a.stop).toBeUndefined();
    expect(a.ops.map((o) => o.op)).toEqual([OP.SEQUENCE, OP.LOCK, OP.SETXATTR, OP.TEST_STATEID, OP.COPY]);
    expect(a.ops[0]?.args).toMatchObject({ sequenceid: 5, slotid: 0, cacheThis: true });
    expect(a.ops[1]?.args).toMatchObject({ locktype: 2, length: 2n ** 64n - 1n, locker: { newLockOwner: true, lockOwner: { clientid: 7n } } });
    expect(a.ops[2]?.args).toMatchObject({ option: 1, name: 'user.k' });
  });

  it('decodes EXCHANGE_ID and CREATE_SESSION (4.1)', () => {
    const a = ok(
      compound(1, [
        '0000002a 0102030405060708 00000004 61626364 00000001 00000000 00000001 00000003 6f726700 00000004 6e616d65 0000000000000001 00000002',
        '0000002b 0000000000000001 00000001 00000001' +
          '00000000 00100400 00100400 00001000 00000010 00000040 00000000' +
          '00000000 00001000 00001000 00000000 00000002 00000001 00000000' +
          '40000000 00000001 00000001 00000000 00000001 6d000000 00000000 00000000 00000000',
      ]),
    );
    expect(a.stop).toBeUndefined();
    expect(a.ops[0]?.args).toEqual({
      verifier: hex('0102030405060708'),
      ownerId: Buffer.from('abcd'),
      flags: 1,
      stateProtect: { how: 0 },
      implId: { domain: 'org', name: 'name', date: { seconds: 1n, nseconds: 2 } },
    });
    expect(a.ops[1]?.args).toEqual({
      clientid: 1n,
      sequence: 1,
      flags: 1,
      fore: { headerPadSize: 0, maxRequestSize: 0x100400, maxResponseSize: 0x100400, maxResponseSizeCached: 4096, maxOperations: 16, maxRequests: 64, rdmaIrd: [] },
      back: { headerPadSize: 0, maxRequestSize: 4096, maxResponseSize: 4096, maxResponseSizeCached: 0, maxOperations: 2, maxRequests: 1, rdmaIrd: [] },
      cbProgram: 0x40000000,
      secParms: [{ flavor: 1, sys: { stamp: 0, machineName: 'm', uid: 0, gid: 0, gids: [] } }],
    });
    // Two impl ids (the XDR says <1>), and a callback flavor the union does not have.
    expect(ok(compound(1, ['0000002a 0102030405060708 00000000 00000000 00000000 00000002'])).stop?.status).toBe(NFS4ERR.BADXDR);
  });

  it('has a codec for every operation the issue lists', () => {
    const listed = [
      'PUTROOTFH', 'PUTPUBFH', 'PUTFH', 'GETFH', 'SAVEFH', 'RESTOREFH', 'LOOKUP', 'LOOKUPP', 'GETATTR', 'SETATTR', 'ACCESS', 'OPEN',
      'OPEN_CONFIRM', 'OPEN_DOWNGRADE', 'CLOSE', 'READ', 'WRITE', 'COMMIT', 'CREATE', 'REMOVE', 'RENAME', 'LINK', 'READDIR', 'READLINK',
      'VERIFY', 'NVERIFY', 'LOCK', 'LOCKT', 'LOCKU', 'RELEASE_LOCKOWNER', 'SECINFO', 'SECINFO_NO_NAME', 'SETCLIENTID',
      'SETCLIENTID_CONFIRM', 'RENEW', 'EXCHANGE_ID', 'CREATE_SESSION', 'SEQUENCE', 'RECLAIM_COMPLETE', 'DESTROY_SESSION',
      'DESTROY_CLIENTID', 'TEST_STATEID', 'FREE_STATEID', 'BIND_CONN_TO_SESSION', 'SEEK', 'COPY', 'GETXATTR', 'SETXATTR', 'LISTXATTRS',
      'REMOVEXATTR',
    ] as const;
    for (const n of listed) expect(CODECS[OP[n] as keyof typeof CODECS], n).toBeDefined();
  });
});

describe('COMPOUND bounds and stop points', () => {
  it('refuses too many operations before decoding any (RESOURCE in 4.0, TOO_MANY_OPS in 4.1)', () => {
    expect(decodeCompound(compound(0, [], 101))).toMatchObject({ kind: 'refuse', status: NFS4ERR.RESOURCE });
    expect(decodeCompound(compound(1, [], 101))).toMatchObject({ kind: 'refuse', status: NFS4ERR.TOO_MANY_OPS });
    expect(decodeCompound(compound(1, [], 2 ** 32 - 1))).toMatchObject({ kind: 'refuse' });
    expect(decodeCompound(compound(1, ['00000018', '00000018'], 2), { maxOps: 1 })).toMatchObject({ kind: 'refuse' });
  });

  it('refuses an over-long tag, a wrong minor version, and a cut header', () => {
    const longTag = Buffer.concat([hex('000007d0'), Buffer.alloc(2000), hex('00000000 00000000')]);
    expect(decodeCompound(longTag)).toMatchObject({ kind: 'refuse', status: NFS4ERR.RESOURCE });
    expect(decodeCompound(hex('000007d0 00000000'))).toMatchObject({ kind: 'garbage' });
    expect(decodeCompound(hex('00000000 00000003 00000000'))).toMatchObject({ kind: 'refuse', status: NFS4ERR.MINOR_VERS_MISMATCH });
    expect(decodeCompound(hex('00000000 00000000'))).toMatchObject({ kind: 'garbage' });
    expect(decodeCompound(hex(''))).toMatchObject({ kind: 'garbage' });
  });

  it('stops at an unknown operation with OP_ILLEGAL, per minor version', () => {
    expect(ok(compound(0, ['00000018', '00000002'])).stop).toMatchObject({ op: OP.ILLEGAL, status: NFS4ERR.OP_ILLEGAL });
    expect(ok(compound(0, ['00002710'])).stop).toMatchObject({ op: OP.ILLEGAL, status: NFS4ERR.OP_ILLEGAL });
    expect(ok(compound(0, ['00000035'])).stop).toMatchObject({ status: NFS4ERR.OP_ILLEGAL }); // SEQUENCE in 4.0
    expect(ok(compound(1, ['00000048'])).stop).toMatchObject({ status: NFS4ERR.OP_ILLEGAL }); // GETXATTR in 4.1
  });

  it('answers NOTSUPP for defined operations without a codec and for 4.0-only ones in 4.1', () => {
    expect(ok(compound(1, ['00000032'])).stop).toMatchObject({ op: OP.LAYOUTGET, status: NFS4ERR.NOTSUPP });
    expect(ok(compound(1, ['00000014'])).stop).toMatchObject({ op: OP.OPEN_CONFIRM, status: NFS4ERR.NOTSUPP });
    expect(ok(compound(0, ['00000014' + STATEID + '00000001'])).stop).toBeUndefined();
  });

  it('stops at undecodable arguments with BADXDR, at bad names with INVAL or NAMETOOLONG', () => {
    const stop = (ops: string[]) => ok(compound(0, ops)).stop;
    expect(stop(['00000018', '0000000f 00000010 6162'])).toMatchObject({ op: OP.LOOKUP, status: NFS4ERR.BADXDR });
    expect(stop(['0000000f' + str(Buffer.from([0xc3, 0x28]))])).toMatchObject({ op: OP.LOOKUP, status: NFS4ERR.INVAL });
    expect(stop(['0000000f 00000000'])).toMatchObject({ op: OP.LOOKUP, status: NFS4ERR.INVAL });
    expect(stop(['0000000f' + str(Buffer.alloc(1500, 0x61))])).toMatchObject({ op: OP.LOOKUP, status: NFS4ERR.NAMETOOLONG });
    expect(stop(['00000016' + str(Buffer.alloc(129))])).toMatchObject({ op: OP.PUTFH, status: NFS4ERR.BADXDR });
    expect(stop(['00000018'])).toBeUndefined();
    // numops says 3, two are present.
    expect(ok(compound(0, ['00000018', '0000000a'], 3)).stop).toMatchObject({ op: OP.ILLEGAL, status: NFS4ERR.BADXDR });
    // A bitmap over 64 words, a bool that is 2, an enum out of range.
    expect(stop(['00000009 00000041'])).toMatchObject({ status: NFS4ERR.BADXDR });
    expect(ok(compound(1, ['0000003a 00000002'])).stop).toMatchObject({ op: OP.RECLAIM_COMPLETE, status: NFS4ERR.BADXDR });
    expect(stop(['00000026' + STATEID + '0000000000000000 00000003 00000000'])).toMatchObject({ op: OP.WRITE, status: NFS4ERR.BADXDR });
  });
});

describe('execution and COMPOUND4res', () => {
  it('stub: PUTROOTFH answered NOTSUPP, nothing after it', async () => {
    const a = ok(hex('00000000 00000000 00000002 00000018 00000009 00000001 00000001'));
    const seen: number[] = [];
    const res = await runCompound(a, (op) => {
      seen.push(op.op);
      return { op: op.op, status: NFS4ERR.NOTSUPP };
    });
    expect(seen).toEqual([OP.PUTROOTFH]);
    const w = new XdrWriter();
    encodeCompoundRes(w, res);
    expect(w.toBuffer().toString('hex')).toBe(hex('00002714 00000000 00000001 00000018 00002714').toString('hex'));
  });

  it('PUTROOTFH + GETATTR answered with attributes packed in number order', async () => {
    const a = ok(hex('00000000 00000000 00000002 00000018 00000009 00000002 0000001a 00000002'));
    const res = await runCompound(a, (op) => {
      if (op.op === OP.GETATTR) {
        const request = op.args.request;
        return {
          op: OP.GETATTR,
          status: 0,
          // fileid is offered but not requested: left out.
          res: { writeAttrs: (w: XdrWriter) => void encodeFattr(w, request, { mode: 0o644, size: 5n, type: NF4.REG, change: 7n, fileid: 9n }) },
        };
      }
      return { op: op.op, status: 0 };
    });
    const w = new XdrWriter();
    encodeCompoundRes(w, res);
    expect(w.toBuffer().toString('hex')).toBe(
      hex(
        '00000000 00000000 00000002' +
          '00000018 00000000' +
          '00000009 00000000 00000002 0000001a 00000002 00000018 00000001 0000000000000007 0000000000000005 000001a4',
      ).toString('hex'),
    );
  });

  it('appends the decode stop point only when every operation before it succeeded', async () => {
    const a = ok(compound(0, ['00000018', '00000002']));
    const res = await runCompound(a, (op) => ({ op: op.op, status: 0 }));
    expect(res.status).toBe(NFS4ERR.OP_ILLEGAL);
    const w = new XdrWriter();
    encodeCompoundRes(w, res);
    expect(w.toBuffer().toString('hex')).toBe(hex('0000273c 00000000 00000002 00000018 00000000 0000273c 0000273c').toString('hex'));
    const failed = await runCompound(a, (op) => ({ op: op.op, status: NFS4ERR.NOTSUPP }));
    expect(failed.results).toHaveLength(1);
  });

  it('encodes the error arms that carry data: SETATTR attrsset, LOCK DENIED, SETCLIENTID CLID_INUSE', () => {
    const w = new XdrWriter();
    encodeCompoundRes(w, {
      status: NFS4ERR.DENIED,
      tag: Buffer.from('t'),
      results: [
        { op: OP.SETATTR, status: 0, res: { attrsSet: bitmapOf([FATTR4.MODE]) } },
        { op: OP.SETCLIENTID, status: NFS4ERR.CLID_INUSE, res: { inUse: { netid: 'tcp', addr: '1.2.3.4.0.1' } } },
        { op: OP.LOCK, status: NFS4ERR.DENIED, res: { denied: { offset: 0n, length: 10n, locktype: 2, owner: { clientid: 1n, owner: Buffer.from('o') } } } },
      ],
    });
    expect(w.toBuffer().toString('hex')).toBe(
      hex(
        '0000271a 00000001 74000000 00000003' +
          '00000022 00000000 00000002 00000000 00000002' +
          '00000023 00002721 00000003 74637000 0000000b 312e322e332e342e302e3100' +
          '0000000c 0000271a 0000000000000000 000000000000000a 00000002 0000000000000001 00000001 6f000000',
      ).toString('hex'),
    );
  });
});

describe('4.1 results', () => {
  it('encodes EXCHANGE_ID, CREATE_SESSION and SEQUENCE results', () => {
    const sid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const attrs = { headerPadSize: 0, maxRequestSize: 0x100400, maxResponseSize: 0x100400, maxResponseSizeCached: 4096, maxOperations: 16, maxRequests: 64, rdmaIrd: [] };
    const w = new XdrWriter();
    encodeCompoundRes(w, {
      status: 0,
      tag: Buffer.alloc(0),
      results: [
        {
          op: OP.EXCHANGE_ID,
          status: 0,
          res: { clientid: 5n, sequenceid: 1, flags: 0x80010000, stateProtect: { how: 0 }, serverOwner: { minorId: 0n, majorId: Buffer.from('p') }, serverScope: Buffer.from('s') },
        },
        { op: OP.CREATE_SESSION, status: 0, res: { sessionid: sid, sequence: 1, flags: 0, fore: attrs, back: attrs } },
        { op: OP.SEQUENCE, status: 0, res: { sessionid: sid, sequenceid: 7, slotid: 0, highestSlotid: 0, targetHighestSlotid: 63, statusFlags: 0 } },
      ],
    });
    const ch = '00000000 00100400 00100400 00001000 00000010 00000040 00000000';
    expect(w.toBuffer().toString('hex')).toBe(
      hex(
        '00000000 00000000 00000003' +
          '0000002a 00000000 0000000000000005 00000001 80010000 00000000 0000000000000000 00000001 70000000 00000001 73000000 00000000' +
          '0000002b 00000000 00112233445566778899aabbccddeeff 00000001 00000000' + ch + ch +
          '00000035 00000000 00112233445566778899aabbccddeeff 00000007 00000000 00000000 0000003f 00000000',
      ).toString('hex'),
    );
  });
});

describe('OPEN results', () => {
  it('encodes no delegation: NONE (4.0), NONE_EXT with a reason, and the bool CONTENTION/RESOURCE carry (RFC 8881 §18.16.3)', () => {
    const open = (delegation: object): string => {
      const w = new XdrWriter();
      encodeCompoundRes(w, {
        status: 0,
        tag: Buffer.alloc(0),
        results: [{ op: OP.OPEN, status: 0, res: { stateid: { seqid: 1, other: Buffer.alloc(12) }, cinfo: { atomic: true, before: 1n, after: 2n }, rflags: 4, attrSet: [], delegation } as never }],
      });
      return w.toBuffer().subarray(12 + 8 + 16 + 20 + 4 + 4).toString('hex');
    };
    expect(open({ type: 0 })).toBe('00000000');
    expect(open({ type: 3, why: 0 })).toBe('0000000300000000');
    expect(open({ type: 3, why: 1, serverWillPushOrSignal: true })).toBe('000000030000000100000001');
    expect(open({ type: 3, why: 2 })).toBe('000000030000000200000000');
    expect(open({ type: 3, why: 8 })).toBe('0000000300000008');
  });
});

describe('fattr4', () => {
  it('decodes settable values (size, mode, owner, times) and refuses what SETATTR may not set', () => {
    const mask = bitmapOf([FATTR4.SIZE, FATTR4.MODE, FATTR4.OWNER, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET]);
    const vals = hex('0000000000000400 000001ed' + str('1000') + '00000000 00000001 0000000065000000 000003e8');
    const d = decodeAttrValues({ mask, vals }, { settable: true });
    expect(d).toEqual({
      ok: true,
      attrs: [FATTR4.SIZE, FATTR4.MODE, FATTR4.OWNER, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET],
      values: { size: 1024n, mode: 0o755, owner: '1000', timeAccessSet: { how: 0 }, timeModifySet: { how: 1, time: { seconds: 0x65000000n, nseconds: 1000 } } },
    });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.TYPE]), vals: hex('00000001') }, { settable: true })).toMatchObject({ ok: false, status: NFS4ERR.INVAL });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.TYPE]), vals: hex('00000001') }, { settable: false })).toMatchObject({ ok: true });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.ACL]), vals: hex('00000000') }, { settable: true })).toMatchObject({ status: NFS4ERR.ATTRNOTSUPP });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.MODE]), vals: hex('000001ed 00000000') }, { settable: true })).toMatchObject({ status: NFS4ERR.BADXDR });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.SIZE]), vals: hex('00000000') }, { settable: true })).toMatchObject({ status: NFS4ERR.BADXDR });
    expect(decodeAttrValues({ mask: bitmapOf([FATTR4.TIME_MODIFY_SET]), vals: hex('00000001 0000000000000000 3b9aca00') }, { settable: true })).toMatchObject({ status: NFS4ERR.INVAL });
  });

  it('round-trips every attribute the codec knows', () => {
    const values = {
      supportedAttrs: bitmapOf([0, 1, 2, 82]),
      type: NF4.DIR,
      fhExpireType: 0,
      change: 99n,
      size: 4096n,
      linkSupport: true,
      symlinkSupport: true,
      namedAttr: false,
      fsid: { major: 1n, minor: 2n },
      uniqueHandles: true,
      leaseTime: 90,
      rdattrError: 0,
      aclSupport: 0,
      cansettime: true,
      caseInsensitive: false,
      casePreserving: true,
      chownRestricted: true,
      filehandle: Buffer.from('0123456789abcdef'),
      fileid: 12345n,
      filesAvail: 1n,
      filesFree: 2n,
      filesTotal: 3n,
      homogeneous: true,
      maxfilesize: 2n ** 63n,
      maxlink: 1,
      maxname: 255,
      maxread: 1048576n,
      maxwrite: 1048576n,
      mode: 0o40755,
      noTrunc: true,
      numlinks: 2,
      owner: '1000',
      ownerGroup: '1000',
      rawdev: { major: 0, minor: 0 },
      spaceAvail: 10n,
      spaceFree: 11n,
      spaceTotal: 12n,
      spaceUsed: 4096n,
      timeAccess: { seconds: 1n, nseconds: 2 },
      timeCreate: { seconds: -1n, nseconds: 0 },
      timeDelta: { seconds: 0n, nseconds: 1 },
      timeMetadata: { seconds: 3n, nseconds: 4 },
      timeModify: { seconds: 5n, nseconds: 6 },
      mountedOnFileid: 12345n,
      suppattrExclcreat: bitmapOf([4, 33]),
      xattrSupport: true,
    };
    const all = bitmapOf(Array.from({ length: 90 }, (_, i) => i));
    const buf = fattrToBuffer(all, values);
    const len = buf.readUInt32BE(0);
    const mask = Array.from({ length: len }, (_, i) => buf.readUInt32BE(4 + 4 * i));
    const vals = buf.subarray(4 + 4 * len + 4);
    expect(vals.length).toBe(buf.readUInt32BE(4 + 4 * len));
    const d = decodeAttrValues({ mask, vals }, { settable: false });
    expect(d.ok && d.values).toEqual(values);
    expect(attrListBytes(mask, values)?.equals(vals)).toBe(true);
  });
});
