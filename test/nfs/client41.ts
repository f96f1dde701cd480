/**
 * A small NFSv4.1 client for the per-operation tests, on the wire layer's XDR and RPC helpers:
 * EXCHANGE_ID + CREATE_SESSION, then COMPOUNDs of argument encoders (below) behind a SEQUENCE it
 * numbers itself (or a caller's explicit slot and sequence id, to test replays). Results are
 * parsed in order with a small reader per operation; a COMPOUND stops at its first error, so the
 * result list does too. Not a general client: only what the tests use.
 */
import { randomBytes } from 'node:crypto';
import { NFSPROC4, OP } from '../../protocols/nfs/nfs4-types.ts';
import { AUTH_FLAVOR, encodeAuthSys } from '../../protocols/nfs/rpc.ts';
import { XdrReader, XdrWriter } from '../../protocols/nfs/xdr.ts';
import { RpcClient, callRecord } from './helpers.ts';

export interface OpEnc {
  op: number;
  write(w: XdrWriter): void;
}
export interface Stateid {
  seqid: number;
  other: Buffer;
}
export interface OpRes {
  op: number;
  status: number;
  /** Parsed success body (per operation), when the reader knows it. */
  body?: Record<string, unknown>;
}
export interface CompoundReply {
  status: number;
  results: OpRes[];
  /** The COMPOUND4res bytes as received (replay tests compare them). */
  raw: Buffer;
}

export const w4 = (op: number, f: (w: XdrWriter) => void = () => {}): OpEnc => ({ op, write: (w) => void f(w.u32(op)) });
const stateid = (w: XdrWriter, s: Stateid): void => void w.u32(s.seqid).opaqueFixed(s.other);
export const bitmap = (w: XdrWriter, attrs: number[]): void => {
  const words: number[] = [];
  for (const a of attrs) {
    while (words.length <= a >> 5) words.push(0);
    words[a >> 5] = ((words[a >> 5] ?? 0) | (1 << (a & 31))) >>> 0;
  }
  w.u32Array(words);
};

export const ops = {
  putrootfh: () => w4(OP.PUTROOTFH),
  putfh: (fh: Buffer) => w4(OP.PUTFH, (w) => w.opaque(fh)),
  getfh: () => w4(OP.GETFH),
  savefh: () => w4(OP.SAVEFH),
  restorefh: () => w4(OP.RESTOREFH),
  lookup: (name: string) => w4(OP.LOOKUP, (w) => w.string(name)),
  lookupp: () => w4(OP.LOOKUPP),
  getattr: (attrs: number[]) => w4(OP.GETATTR, (w) => bitmap(w, attrs)),
  access: (bits: number) => w4(OP.ACCESS, (w) => w.u32(bits)),
  remove: (name: string) => w4(OP.REMOVE, (w) => w.string(name)),
  rename: (from: string, to: string) => w4(OP.RENAME, (w) => w.string(from).string(to)),
  mkdir: (name: string) => w4(OP.CREATE, (w) => {
    w.u32(2).string(name);
    bitmap(w, []);
    w.opaque(Buffer.alloc(0));
  }),
  readdir: (cookie = 0n, maxcount = 8192, attrs: number[] = []) => w4(OP.READDIR, (w) => {
    w.u64(cookie).opaqueFixed(Buffer.alloc(8)).u32(maxcount).u32(maxcount);
    bitmap(w, attrs);
  }),
  /** COPY (4.2): saved filehandle + src stateid to the current filehandle + dst stateid, synchronous. */
  copy: (src: Stateid, dst: Stateid, srcOffset: bigint, dstOffset: bigint, count: bigint) => w4(OP.COPY, (w) => {
    stateid(w, src);
    stateid(w, dst);
    w.u64(srcOffset).u64(dstOffset).u64(count).bool(false).bool(true).u32(0);
  }),
  /** ALLOCATE / DEALLOCATE (4.2) of a range of the file the stateid opened. */
  allocate: (s: Stateid, offset: bigint, length: bigint, de = false) => w4(de ? OP.DEALLOCATE : OP.ALLOCATE, (w) => {
    stateid(w, s);
    w.u64(offset).u64(length);
  }),
  seek: (s: Stateid, offset: bigint, what: 0 | 1) => w4(OP.SEEK, (w) => {
    stateid(w, s);
    w.u64(offset).u32(what);
  }),
  /** VERIFY / NVERIFY of the size attribute. */
  verifySize: (op: 'verify' | 'nverify', size: bigint) => w4(op === 'verify' ? OP.VERIFY : OP.NVERIFY, (w) => {
    bitmap(w, [4]);
    w.opaque(new XdrWriter().u64(size).toBuffer());
  }),
  reclaimComplete: (oneFs = false) => w4(OP.RECLAIM_COMPLETE, (w) => void w.bool(oneFs)),
  setclientid: (verifier: Buffer, id: string) =>
    w4(OP.SETCLIENTID, (w) => void w.opaqueFixed(verifier).opaque(Buffer.from(id)).u32(0x40000000).string('tcp').string('127.0.0.1.0.0').u32(1)),
  setclientidConfirm: (clientid: bigint, confirm: Buffer) => w4(OP.SETCLIENTID_CONFIRM, (w) => void w.u64(clientid).opaqueFixed(confirm)),
  renew: (clientid: bigint) => w4(OP.RENEW, (w) => void w.u64(clientid)),
  /** 4.0 OPEN with an explicit owner seqid (4.1 ignores it). */
  open40: (seqid: number, clientid: bigint, owner: string, name: string, access = 1) =>
    w4(OP.OPEN, (w) => void w.u32(seqid).u32(access).u32(0).u64(clientid).opaque(Buffer.from(owner)).u32(0).u32(0).string(name)),
  close40: (seqid: number, s: Stateid) => w4(OP.CLOSE, (w) => void stateid(w.u32(seqid), s)),
  /** 4.0 OPEN CLAIM_NULL creating `name` (GUARDED, no attributes), read and write. */
  create40: (seqid: number, clientid: bigint, owner: string, name: string) =>
    w4(OP.OPEN, (w) => {
      w.u32(seqid).u32(3).u32(0).u64(clientid).opaque(Buffer.from(owner)).u32(1).u32(1);
      bitmap(w, []);
      w.opaque(Buffer.alloc(0));
      w.u32(0).string(name);
    }),
  openDowngrade40: (seqid: number, s: Stateid, access: number, deny = 0) => w4(OP.OPEN_DOWNGRADE, (w) => {
    stateid(w, s);
    w.u32(seqid).u32(access).u32(deny);
  }),
  /** 4.0 LOCK: a new lock-owner (`open` the open stateid, with the open-owner's seqid) or an existing one (`lock`). */
  lock40: (
    l: { open: Stateid; openSeqid: number; lockSeqid: number; clientid: bigint; owner: string } | { lock: Stateid; lockSeqid: number },
    offset: bigint,
    length: bigint,
  ) =>
    w4(OP.LOCK, (w) => {
      w.u32(2).bool(false).u64(offset).u64(length);
      if ('open' in l) {
        w.bool(true).u32(l.openSeqid);
        stateid(w, l.open);
        w.u32(l.lockSeqid).u64(l.clientid).opaque(Buffer.from(l.owner));
      } else {
        w.bool(false);
        stateid(w, l.lock);
        w.u32(l.lockSeqid);
      }
    }),
  locku40: (seqid: number, s: Stateid, offset: bigint, length: bigint) => w4(OP.LOCKU, (w) => {
    w.u32(2).u32(seqid);
    stateid(w, s);
    w.u64(offset).u64(length);
  }),
  /** OPEN CLAIM_PREVIOUS of the current file (a reclaim after a server restart). */
  openPrevious: (clientid: bigint, owner: string, o: { access?: number; deny?: number } = {}) =>
    w4(OP.OPEN, (w) => void w.u32(0).u32(o.access ?? 3).u32(o.deny ?? 0).u64(clientid).opaque(Buffer.from(owner)).u32(0).u32(1).u32(0)),
  /** OPEN CLAIM_NULL; `create`: GUARDED with no attributes. access 1 read, 2 write, 3 both. */
  open: (clientid: bigint, owner: string, name: string, o: { access?: number; deny?: number; create?: 'guarded' | 'unchecked'; mode?: number } = {}) =>
    w4(OP.OPEN, (w) => {
      w.u32(0).u32(o.access ?? 3).u32(o.deny ?? 0).u64(clientid).opaque(Buffer.from(owner));
      if (o.create) {
        w.u32(1).u32(o.create === 'guarded' ? 1 : 0);
        if (o.mode === undefined) {
          bitmap(w, []);
          w.opaque(Buffer.alloc(0));
        } else {
          bitmap(w, [33]);
          w.opaque(new XdrWriter().u32(o.mode).toBuffer());
        }
      } else {
        w.u32(0);
      }
      w.u32(0).string(name);
    }),
  close: (s: Stateid) => w4(OP.CLOSE, (w) => void stateid(w.u32(0), s)),
  read: (s: Stateid, offset: bigint, count: number) => w4(OP.READ, (w) => {
    stateid(w, s);
    w.u64(offset).u32(count);
  }),
  write: (s: Stateid, offset: bigint, data: Buffer, stable = 2) => w4(OP.WRITE, (w) => {
    stateid(w, s);
    w.u64(offset).u32(stable).opaque(data);
  }),
  commit: () => w4(OP.COMMIT, (w) => w.u64(0n).u32(0)),
  lock: (s: Stateid, clientid: bigint, owner: string, offset: bigint, length: bigint, write = true) => w4(OP.LOCK, (w) => {
    w.u32(write ? 2 : 1).bool(false).u64(offset).u64(length).bool(true).u32(0);
    stateid(w, s);
    w.u32(0).u64(clientid).opaque(Buffer.from(owner));
  }),
  lockt: (clientid: bigint, owner: string, offset: bigint, length: bigint, write = true) => w4(OP.LOCKT, (w) => {
    w.u32(write ? 2 : 1).u64(offset).u64(length).u64(clientid).opaque(Buffer.from(owner));
  }),
  locku: (s: Stateid, offset: bigint, length: bigint) => w4(OP.LOCKU, (w) => {
    w.u32(2).u32(0);
    stateid(w, s);
    w.u64(offset).u64(length);
  }),
  /** SETATTR of owner and/or owner_group (strings) with the anonymous stateid. */
  setOwners: (owner?: string, group?: string) => w4(OP.SETATTR, (w) => {
    stateid(w, { seqid: 0, other: Buffer.alloc(12) });
    const vals = new XdrWriter();
    const attrs: number[] = [];
    if (owner !== undefined) {
      attrs.push(36);
      vals.string(owner);
    }
    if (group !== undefined) {
      attrs.push(37);
      vals.string(group);
    }
    bitmap(w, attrs);
    w.opaque(vals.toBuffer());
  }),
  secinfo: (name: string) => w4(OP.SECINFO, (w) => w.string(name)),
  setxattr: (name: string, value: Buffer) => w4(OP.SETXATTR, (w) => w.u32(0).string(name).opaque(value)),
  getxattr: (name: string) => w4(OP.GETXATTR, (w) => w.string(name)),
};

const readStateid = (r: XdrReader): Stateid => ({ seqid: r.u32(), other: Buffer.from(r.opaqueFixed(12)) });
const readCinfo = (r: XdrReader) => ({ atomic: r.bool(), before: r.u64(), after: r.u64() });
const skipBitmap = (r: XdrReader): number[] => r.u32Array(64);

/** Readers of the success bodies the tests look at (others must be last in their COMPOUND). */
const READERS: Record<number, (r: XdrReader) => Record<string, unknown>> = {
  [OP.SEQUENCE]: (r) => ({ sessionid: r.opaqueFixed(16), seqid: r.u32(), slot: r.u32(), highest: r.u32(), target: r.u32(), flags: r.u32() }),
  [OP.PUTROOTFH]: () => ({}),
  [OP.PUTFH]: () => ({}),
  [OP.SAVEFH]: () => ({}),
  [OP.RESTOREFH]: () => ({}),
  [OP.LOOKUP]: () => ({}),
  [OP.LOOKUPP]: () => ({}),
  [OP.GETFH]: (r) => ({ fh: Buffer.from(r.opaque(128)) }),
  [OP.GETATTR]: (r) => ({ mask: skipBitmap(r), vals: Buffer.from(r.opaque(1 << 20)) }),
  [OP.ACCESS]: (r) => ({ supported: r.u32(), access: r.u32() }),
  [OP.REMOVE]: (r) => ({ cinfo: readCinfo(r) }),
  [OP.RENAME]: (r) => ({ source: readCinfo(r), target: readCinfo(r) }),
  [OP.CREATE]: (r) => ({ cinfo: readCinfo(r), attrset: skipBitmap(r) }),
  [OP.OPEN]: (r) => {
    const sid = readStateid(r);
    const cinfo = readCinfo(r);
    const rflags = r.u32();
    skipBitmap(r);
    const deleg = r.u32();
    if (deleg === 3) {
      const why = r.u32();
      if (why === 1 || why === 2) r.bool();
    }
    return { stateid: sid, cinfo, rflags };
  },
  [OP.CLOSE]: (r) => ({ stateid: readStateid(r) }),
  [OP.OPEN_DOWNGRADE]: (r) => ({ stateid: readStateid(r) }),
  [OP.READ]: (r) => ({ eof: r.bool(), data: Buffer.from(r.opaque(1 << 21)) }),
  [OP.WRITE]: (r) => ({ count: r.u32(), committed: r.u32(), verifier: Buffer.from(r.opaqueFixed(8)) }),
  [OP.COMMIT]: (r) => ({ verifier: Buffer.from(r.opaqueFixed(8)) }),
  [OP.LOCK]: (r) => ({ stateid: readStateid(r) }),
  [OP.LOCKU]: (r) => ({ stateid: readStateid(r) }),
  [OP.READDIR]: (r) => {
    const cookieverf = Buffer.from(r.opaqueFixed(8));
    const names: string[] = [];
    const attrs: Buffer[] = [];
    const cookies: bigint[] = [];
    while (r.bool()) {
      cookies.push(r.u64());
      names.push(r.utf8(1024));
      skipBitmap(r);
      attrs.push(Buffer.from(r.opaque(1 << 20)));
    }
    return { cookieverf, names, attrs, cookies, eof: r.bool() };
  },
  [OP.READLINK]: (r) => ({ link: r.utf8(4096) }),
  [OP.SETXATTR]: (r) => ({ cinfo: readCinfo(r) }),
  [OP.GETXATTR]: (r) => ({ value: Buffer.from(r.opaque(1 << 20)) }),
  [OP.COPY]: (r) => {
    const n = r.u32();
    if (n === 1) readStateid(r);
    return { count: r.u64(), committed: r.u32(), verifier: Buffer.from(r.opaqueFixed(8)), consecutive: r.bool(), synchronous: r.bool() };
  },
  [OP.SEEK]: (r) => ({ eof: r.bool(), offset: r.u64() }),
  [OP.SETCLIENTID]: (r) => ({ clientid: r.u64(), confirm: Buffer.from(r.opaqueFixed(8)) }),
  [OP.SETCLIENTID_CONFIRM]: () => ({}),
  [OP.RENEW]: () => ({}),
  [OP.EXCHANGE_ID]: (r) => ({ clientid: r.u64(), seq: r.u32() }),
  [OP.CREATE_SESSION]: (r) => ({ sessionid: Buffer.from(r.opaqueFixed(16)), seq: r.u32(), flags: r.u32(), fore: [r.u32(), r.u32(), r.u32(), r.u32(), r.u32(), r.u32()] }),
};

export function parseCompoundRes(raw: Buffer): CompoundReply {
  const r = new XdrReader(raw);
  const status = r.u32();
  r.opaque(1024);
  const n = r.u32();
  const results: OpRes[] = [];
  for (let i = 0; i < n; i++) {
    const op = r.u32();
    const st = r.u32();
    const res: OpRes = { op, status: st };
    results.push(res);
    // LOCK and LOCKT answer DENIED with the lock in the way (LOCK4denied, RFC 8881 §18.10.2).
    if (st === 10010 && (op === OP.LOCK || op === OP.LOCKT)) {
      res.body = { offset: r.u64(), length: r.u64(), locktype: r.u32(), clientid: r.u64(), owner: Buffer.from(r.opaque(1024)) };
    }
    if (st !== 0) break;
    const reader = READERS[op];
    if (!reader) break;
    res.body = reader(r);
  }
  return { status, results, raw };
}

export class Nfs41Client {
  readonly rpc: RpcClient;
  private xid = 1;
  private readonly cred;
  clientid = 0n;
  sessionid: Buffer = Buffer.alloc(16);
  slotSeq = 0;
  /** The fore channel CREATE_SESSION granted: headerpad, maxreq, maxresp, maxresp cached, maxops, maxreqs. */
  foreAttrs: number[] = [];
  owner = randomBytes(8).toString('hex');
  /** The client's boot verifier (the same across server restarts, as a client that did not reboot). */
  verifier: Buffer = randomBytes(8);

  private constructor(rpc: RpcClient, uid: number) {
    this.rpc = rpc;
    this.cred = { flavor: AUTH_FLAVOR.SYS, body: encodeAuthSys({ stamp: 1, machineName: 'client41', uid, gid: uid, gids: [] }) };
  }

  static async connect(port: number, o: { uid?: number; session?: boolean; owner?: string; verifier?: Buffer; reclaimComplete?: boolean } = {}): Promise<Nfs41Client> {
    const c = new Nfs41Client(await RpcClient.connect(port), o.uid ?? 0);
    if (o.owner) c.owner = o.owner;
    if (o.verifier) c.verifier = o.verifier;
    if (o.session !== false) await c.createSession(o.reclaimComplete !== false);
    return c;
  }

  /** One COMPOUND as given (no SEQUENCE added). */
  async raw(minor: number, list: OpEnc[]): Promise<CompoundReply> {
    const w = new XdrWriter();
    w.opaque(Buffer.alloc(0)).u32(minor).u32(list.length);
    for (const o of list) o.write(w);
    const xid = this.xid++;
    const reply = await this.rpc.call(xid, callRecord({ xid, proc: NFSPROC4.COMPOUND, cred: this.cred, args: w.toBuffer() }), { timeoutMs: 20_000 });
    if (reply.reply.kind !== 'success') throw new Error(`RPC ${reply.reply.kind}`);
    return parseCompoundRes(Buffer.from(reply.results));
  }

  sequence(o: { seqid?: number; slot?: number; cacheThis?: boolean; sessionid?: Buffer } = {}): OpEnc {
    const seqid = o.seqid ?? ++this.slotSeq;
    return w4(OP.SEQUENCE, (w) => w.opaqueFixed(o.sessionid ?? this.sessionid).u32(seqid).u32(o.slot ?? 0).u32(0).bool(o.cacheThis ?? true));
  }

  /** SEQUENCE (next seqid on slot 0) + the operations. */
  call(list: OpEnc[], minor = 1): Promise<CompoundReply> {
    return this.raw(minor, [this.sequence(), ...list]);
  }

  async createSession(reclaimComplete = true): Promise<void> {
    const ex = await this.raw(1, [
      w4(OP.EXCHANGE_ID, (w) => {
        w.opaqueFixed(this.verifier).opaque(Buffer.from(`client41-${this.owner}`)).u32(0).u32(0).u32(0);
      }),
    ]);
    if (ex.status !== 0) throw new Error(`EXCHANGE_ID ${ex.status}`);
    this.clientid = ex.results[0]!.body!.clientid as bigint;
    const attrs = (w: XdrWriter) => w.u32(0).u32(1 << 20).u32(1 << 20).u32(1 << 16).u32(16).u32(8).u32(0);
    const cs = await this.raw(1, [
      w4(OP.CREATE_SESSION, (w) => {
        w.u64(this.clientid).u32(ex.results[0]!.body!.seq as number).u32(0);
        attrs(w);
        attrs(w);
        w.u32(0x40000000).u32(1).u32(0);
      }),
    ]);
    if (cs.status !== 0) throw new Error(`CREATE_SESSION ${cs.status}`);
    this.sessionid = cs.results[0]!.body!.sessionid as Buffer;
    this.foreAttrs = cs.results[0]!.body!.fore as number[];
    this.slotSeq = 0;
    if (reclaimComplete) await this.reclaimComplete();
  }

  async reclaimComplete(): Promise<void> {
    const rc = await this.call([w4(OP.RECLAIM_COMPLETE, (w) => w.bool(false))]);
    if (rc.status !== 0) throw new Error(`RECLAIM_COMPLETE ${rc.status}`);
  }

  /** PUTROOTFH + LOOKUP of each path segment (the first is the share). */
  lookupPath(path: string): OpEnc[] {
    return [ops.putrootfh(), ...path.split('/').filter(Boolean).map((s) => ops.lookup(s))];
  }

  close(): void {
    this.rpc.close();
  }
}

/** The result of `op` in a reply (the first with that number). */
export function resultOf(r: CompoundReply, op: number): OpRes | undefined {
  return r.results.find((x) => x.op === op);
}
