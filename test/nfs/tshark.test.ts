/**
 * An independent check of the codecs: Wireshark's NFS dissector (tshark) reads a capture of the
 * hand-built COMPOUND argument vectors and of replies holding every operation's result (success
 * and the error arms that carry data) and must find every operation, and nothing malformed or
 * left undissected. tshark is not a test peer of the suite: this runs where it is installed
 * (`apt-get install tshark`) and is skipped elsewhere.
 *
 * Known Wireshark gap (4.0): it does not read open_none_delegation4's bool for WND4_CONTENTION /
 * WND4_RESOURCE (RFC 8881 §18.16.3), so that arm is not in the capture.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeCompound, encodeCompoundRes, type OpResult } from '../../protocols/nfs/compound.ts';
import { encodeFattr, fattrToBuffer } from '../../protocols/nfs/fattr4.ts';
import { FATTR4, NF4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { encodeReplyHeader } from '../../protocols/nfs/rpc.ts';
import { frameRecord } from '../../protocols/nfs/record-marking.ts';
import { bitmapOf } from '../../protocols/nfs/xdr4/common.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';
import { callRecord } from './helpers.ts';
import { pcapOf } from './pcap.ts';

const HAS_TSHARK = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const st = { seqid: 1, other: Buffer.alloc(12, 7) };
const sid = Buffer.alloc(16, 0x11);
const cinfo = { atomic: true, before: 1n, after: 2n };
const owner = { clientid: 5n, owner: Buffer.from('lockowner') };
const vals = { type: NF4.REG, change: 3n, size: 12n, fsid: { major: 1n, minor: 2n }, fileid: 77n, mode: 0o644, numlinks: 1, owner: '1000', ownerGroup: '100', spaceUsed: 4096n, timeAccess: { seconds: 1n, nseconds: 2 }, timeModify: { seconds: 3n, nseconds: 4 }, timeMetadata: { seconds: 5n, nseconds: 6 }, mountedOnFileid: 77n, supportedAttrs: bitmapOf([0, 1, 2, 3, 4, 8, 20, 33]), fhExpireType: 0, leaseTime: 90, maxread: 1048576n, maxwrite: 1048576n, maxname: 255, xattrSupport: true, suppattrExclcreat: bitmapOf([4, 33]) };
const req = bitmapOf([0, 1, 2, 3, 4, 8, 10, 20, 27, 29, 30, 31, 33, 35, 36, 37, 45, 47, 52, 53, 55, 75, 82]);
const chan = { headerPadSize: 0, maxRequestSize: 1049600, maxResponseSize: 1049600, maxResponseSizeCached: 4096, maxOperations: 16, maxRequests: 64, rdmaIrd: [] };

const r40: OpResult[] = [
  { op: OP.PUTROOTFH, status: 0 }, { op: OP.PUTPUBFH, status: 0 }, { op: OP.PUTFH, status: 0 }, { op: OP.GETFH, status: 0, res: { fh: Buffer.alloc(24, 3) } },
  { op: OP.SAVEFH, status: 0 }, { op: OP.RESTOREFH, status: 0 }, { op: OP.LOOKUP, status: 0 }, { op: OP.LOOKUPP, status: 0 },
  { op: OP.GETATTR, status: 0, res: { writeAttrs: (w: XdrWriter) => void encodeFattr(w, req, vals) } },
  { op: OP.SETATTR, status: 0, res: { attrsSet: bitmapOf([FATTR4.MODE, FATTR4.SIZE]) } },
  { op: OP.ACCESS, status: 0, res: { supported: 0x3f, access: 0x1f } },
  { op: OP.OPEN, status: 0, res: { stateid: st, cinfo, rflags: 4, attrSet: bitmapOf([FATTR4.MODE]), delegation: { type: 0 } } },
  { op: OP.OPEN_CONFIRM, status: 0, res: { stateid: st } }, { op: OP.OPEN_DOWNGRADE, status: 0, res: { stateid: st } }, { op: OP.CLOSE, status: 0, res: { stateid: st } },
  { op: OP.READ, status: 0, res: { eof: true, data: Buffer.from('hello') } },
  { op: OP.WRITE, status: 0, res: { count: 5, committed: 2, verifier: Buffer.alloc(8, 9) } },
  { op: OP.COMMIT, status: 0, res: { verifier: Buffer.alloc(8, 9) } },
  { op: OP.CREATE, status: 0, res: { cinfo, attrSet: bitmapOf([FATTR4.MODE]) } },
  { op: OP.REMOVE, status: 0, res: { cinfo } }, { op: OP.RENAME, status: 0, res: { source: cinfo, target: cinfo } }, { op: OP.LINK, status: 0, res: { cinfo } },
  { op: OP.READDIR, status: 0, res: { cookieverf: Buffer.alloc(8, 1), entries: [{ cookie: 3n, name: 'a.txt', attrs: fattrToBuffer(bitmapOf([1, 4, 20]), vals) }, { cookie: 4n, name: 'bbbbb', attrs: fattrToBuffer(bitmapOf([1, 4, 20]), vals) }], eof: true } },
  { op: OP.READLINK, status: 0, res: { link: '../target' } },
  { op: OP.VERIFY, status: 0 }, { op: OP.NVERIFY, status: 0 },
  { op: OP.LOCK, status: 0, res: { stateid: st } }, { op: OP.LOCKT, status: 0 }, { op: OP.LOCKU, status: 0, res: { stateid: st } },
  { op: OP.RELEASE_LOCKOWNER, status: 0 },
  { op: OP.SECINFO, status: 0, res: { flavors: [{ flavor: 1 }, { flavor: 0 }, { flavor: 6, oid: hex('2a864886f712010202'), qop: 0, service: 1 }] } },
  { op: OP.SETCLIENTID, status: 0, res: { clientid: 5n, confirm: Buffer.alloc(8, 4) } }, { op: OP.SETCLIENTID_CONFIRM, status: 0 }, { op: OP.RENEW, status: 0 },
  { op: OP.DELEGRETURN, status: 0 },
];
const r41: OpResult[] = [
  { op: OP.SEQUENCE, status: 0, res: { sessionid: sid, sequenceid: 7, slotid: 0, highestSlotid: 0, targetHighestSlotid: 63, statusFlags: 0 } },
  { op: OP.EXCHANGE_ID, status: 0, res: { clientid: 5n, sequenceid: 1, flags: 0x80010000, stateProtect: { how: 1, ops: { mustEnforce: bitmapOf([OP.SEQUENCE]), mustAllow: [] } }, serverOwner: { minorId: 0n, majorId: Buffer.from('portico') }, serverScope: Buffer.from('portico'), implId: { domain: 'portico.example', name: 'Portico', date: { seconds: 0n, nseconds: 0 } } } },
  { op: OP.CREATE_SESSION, status: 0, res: { sessionid: sid, sequence: 1, flags: 0, fore: chan, back: chan } },
  { op: OP.BIND_CONN_TO_SESSION, status: 0, res: { sessionid: sid, dir: 3, rdma: false } },
  { op: OP.OPEN, status: 0, res: { stateid: st, cinfo, rflags: 4, attrSet: [], delegation: { type: 3, why: 0 } } },
  { op: OP.SECINFO_NO_NAME, status: 0, res: { flavors: [{ flavor: 1 }] } },
  { op: OP.TEST_STATEID, status: 0, res: { statuses: [0, NFS4ERR.BAD_STATEID] } },
  { op: OP.FREE_STATEID, status: 0 }, { op: OP.RECLAIM_COMPLETE, status: 0 }, { op: OP.DESTROY_SESSION, status: 0 }, { op: OP.DESTROY_CLIENTID, status: 0 },
  { op: OP.BACKCHANNEL_CTL, status: 0 },
];
const r42: OpResult[] = [
  { op: OP.SEEK, status: 0, res: { eof: false, offset: 4096n } },
  { op: OP.COPY, status: 0, res: { response: { count: 100n, committed: 2, verifier: Buffer.alloc(8, 9) }, requirements: { consecutive: true, synchronous: true } } },
  { op: OP.GETXATTR, status: 0, res: { value: Buffer.from('xattr-value') } },
  { op: OP.SETXATTR, status: 0, res: { cinfo } },
  { op: OP.LISTXATTRS, status: 0, res: { cookie: 9n, names: ['user.a', 'user.bb'], eof: true } },
  { op: OP.REMOVEXATTR, status: 0, res: { cinfo } },
];
const errs: [number, OpResult[]][] = [
  [0, [{ op: OP.LOCK, status: NFS4ERR.DENIED, res: { denied: { offset: 0n, length: 10n, locktype: 2, owner } } }]],
  [0, [{ op: OP.LOCKT, status: NFS4ERR.DENIED, res: { denied: { offset: 0n, length: 10n, locktype: 1, owner } } }]],
  [0, [{ op: OP.SETCLIENTID, status: NFS4ERR.CLID_INUSE, res: { inUse: { netid: 'tcp', addr: '127.0.0.1.3.32' } } }]],
  [0, [{ op: OP.SETATTR, status: NFS4ERR.ACCESS, res: { attrsSet: [] } }]],
  [2, [{ op: OP.COPY, status: NFS4ERR.OFFLOAD_NO_REQS, res: { requirements: { consecutive: false, synchronous: true } } }]],
  [0, [{ op: OP.PUTROOTFH, status: 0 }, { op: OP.ILLEGAL, status: NFS4ERR.OP_ILLEGAL }]],
  [1, [{ op: OP.GETATTR, status: NFS4ERR.NOFILEHANDLE }]],
];

// Calls: the hand-built COMPOUND argument vectors of the tests.
const CALL_ARGS: [number, string][] = [
  [0, '00000000 00000000 00000002 00000018 00000009 00000002 0000001a 00000002'],
  [1, '00000002 72640000 00000001 00000002 00000016 00000004 01020304 00000019 00000001 0a0b0c0d0e0f101112131415 0000000000001000 00001000'],
  [2, '00000000 00000002 00000001 00000026 00000001 0a0b0c0d0e0f101112131415 0000000000000000 00000002 00000005 68656c6c6f000000'],
  [0, '00000000 00000000 00000001 00000012 00000007 00000003 00000000 000000000000002a 00000005 6f776e6572000000 00000001 00000003 0102030405060708 00000001 00000010 00000008 00000000000001a4 00000000 00000001 66000000'],
  [1, '00000000 00000001 00000003 00000035 00112233445566778899aabbccddeeff 00000005 00000000 00000000 00000001 0000000c 00000002 00000000 0000000000000000 ffffffffffffffff 00000001 00000000 00000001 0a0b0c0d0e0f101112131415 00000000 0000000000000007 00000002 6c6f0000 00000022 00000001 0a0b0c0d0e0f101112131415 00000002 00000010 00000002 0000000c 0000000000000400 000001a4'],
  [1, '00000000 00000001 00000001 0000002a 0102030405060708 00000004 61626364 00000001 00000000 00000001 00000003 6f726700 00000004 6e616d65 0000000000000001 00000002'],
  [1, '00000000 00000001 00000001 0000002b 0000000000000001 00000001 00000001 00000000 00100400 00100400 00001000 00000010 00000040 00000000 00000000 00001000 00001000 00000000 00000002 00000001 00000000 40000000 00000001 00000001 00000000 00000001 6d000000 00000000 00000000 00000000'],
  [2, '00000000 00000002 00000004 00000048 00000006 757365722e6b0000 00000049 00000000 00000001 6b000000 00000001 76000000 0000004a 0000000000000000 00001000 0000004b 00000001 6b000000'],
  [0, '00000000 00000000 00000004 0000001a 0000000000000000 0000000000000000 00002000 00008000 00000002 00100000 00000000 0000001d 00000001 61000000 00000001 62000000 00000006 00000005 00000002 2f780000 00000001 6c000000 00000000 00000000 0000001c 00000001 61000000'],
  [2, '00000000 00000002 00000002 00000037 00000002 00000001 0a0b0c0d0e0f101112131415 00000001 0a0b0c0d0e0f101112131415 0000003c 00000001 0a0b0c0d0e0f101112131415 00000001 0a0b0c0d0e0f101112131415 0000000000000000 0000000000000000 0000000000000000 00000000 00000001 00000000'],
];
CALL_ARGS.push([0, '00000000 00000000 00000016 00000003 0000003f 00000004 00000001 00000001 0a0b0c0d0e0f101112131415 00000005 0000000000000000 00001000 00000008 00000001 0a0b0c0d0e0f101112131415 0000000a 0000000b 00000007 6e65776c696e6b00 0000000d 00000001 0000000000000000 0000000000000064 0000000000000005 00000001 6f000000 0000000e 00000001 00000002 00000001 0a0b0c0d0e0f101112131415 0000000000000000 0000000000000064 00000010 00000011 00000001 00000010 00000008 000000000000000c 00000025 00000001 00000010 00000008 000000000000000c 00000014 00000001 0a0b0c0d0e0f101112131415 00000001 00000015 00000001 0a0b0c0d0e0f101112131415 00000002 00000001 00000000 00000017 0000001b 0000001e 0000000000000005 00000020 0000001f 00000021 00000004 6e616d65 00000027 0000000000000005 00000002 6c6f0000 00000024 0000000000000005 0102030405060708 00000023 0102030405060708 00000004 69646964 40000000 00000003 74637000 0000000b 312e322e332e342e302e3100 00000001'], [1, '00000000 00000001 00000007 00000028 40000000 00000001 00000000 00000029 00112233445566778899aabbccddeeff 00000003 00000000 0000002c 00112233445566778899aabbccddeeff 0000002d 00000001 0a0b0c0d0e0f101112131415 00000034 00000000 00000039 0000000000000005 0000003a 00000000'], [2, '00000000 00000002 00000001 00000045 00000001 0a0b0c0d0e0f101112131415 0000000000001000 00000001']);
const replies: [number, OpResult[]][] = [[0, r40], [1, r41], [2, r42], ...errs];


describe.skipIf(!HAS_TSHARK)('tshark reads what the codecs write', () => {
  it('every call vector and every result, nothing malformed', () => {
    const packets: { fromClient: boolean; data: Buffer }[] = [];
    const expected: { call: number[]; reply: number[] }[] = [];
    let xid = 0x1000;
    const exchange = (args: Buffer, results: OpResult[]): void => {
      xid++;
      packets.push({ fromClient: true, data: frameRecord(callRecord({ xid, proc: 1, args })) });
      const w = new XdrWriter();
      encodeReplyHeader(w, xid, { kind: 'success' });
      encodeCompoundRes(w, { status: results[results.length - 1]?.status ?? 0, tag: Buffer.alloc(0), results });
      packets.push({ fromClient: false, data: frameRecord(w.toBuffer()) });
    };
    for (const [, args] of CALL_ARGS) {
      const b = hex(args);
      // Portico's decoder and Wireshark's must find the same operations in the same order.
      const d = decodeCompound(b);
      expect(d.kind === 'ok' && d.args.stop).toBe(undefined);
      exchange(b, [{ op: OP.PUTROOTFH, status: NFS4ERR.NOTSUPP }]);
      expected.push({ call: d.kind === 'ok' ? d.args.ops.map((o) => o.op) : [-1], reply: [OP.PUTROOTFH] });
    }
    for (const [minor, res] of replies) {
      exchange(hex(`00000000 0000000${minor} 00000001 00000018`), res);
      expected.push({ call: [OP.PUTROOTFH], reply: res.map((r) => r.op) });
    }
    const dir = mkdtempSync(join(tmpdir(), 'portico-tshark-'));
    try {
      const file = join(dir, 'nfs4.pcap');
      writeFileSync(file, pcapOf(packets));
      const verbose = execFileSync('tshark', ['-r', file, '-V'], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
      expect(verbose).not.toMatch(/Malformed|undissected|Exception occurred/);
      const fields = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.number', '-e', 'rpc.msgtyp', '-e', 'nfs.opcode'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const frames = fields.trim().split('\n').map((l) => l.split('\t'));
      expect(frames).toHaveLength(packets.length);
      frames.forEach(([, msgtyp, ops], i) => {
        const want = expected[i >> 1] as { call: number[]; reply: number[] };
        const seen = (ops ?? '').split(',').filter(Boolean).map(Number);
        const list = i % 2 === 0 ? want.call : want.reply;
        expect(msgtyp).toBe(i % 2 === 0 ? '0' : '1');
        // In order; the dissector also lists op numbers found inside bitmaps (EXCHANGE_ID's state protection).
        let at = 0;
        for (const op of seen) if (op === list[at]) at++;
        expect(at, `frame ${i + 1}: ${seen.join(',')} vs ${list.join(',')}`).toBe(list.length);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
