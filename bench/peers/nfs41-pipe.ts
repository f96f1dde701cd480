/**
 * The NFSv4.1 client of bench/nfs-bench.ts: the project's test client's operation encoders and
 * result readers (test/nfs/client41.ts) over one TCP connection that pipelines, with a slot table
 * so that up to `slots` COMPOUNDs are outstanding at once (each SEQUENCE on a free slot with that
 * slot's next seqid, sa_cachethis false, as the Linux client sends for non-idempotent-free calls).
 * Records leave as chunk lists (WRITE data by reference, never copied by the client) in one corked
 * write. Drives every server identically: it knows no server.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { NFSPROC4, OP } from '../../protocols/nfs/nfs4-types.ts';
import { AUTH_FLAVOR, decodeReply, encodeAuthSys, encodeCall, type OpaqueAuth } from '../../protocols/nfs/rpc.ts';
import { RecordParser, recordMark } from '../../protocols/nfs/record-marking.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';
import { parseCompoundRes, type CompoundReply, type OpEnc } from '../../test/nfs/client41.ts';

export { ops, resultOf, type CompoundReply, type OpEnc, type Stateid } from '../../test/nfs/client41.ts';

/** A COMPOUND whose status is not NFS4_OK. */
export class NfsStatusError extends Error {
  readonly status: number;
  constructor(what: string, r: CompoundReply) {
    const last = r.results[r.results.length - 1];
    super(`${what}: NFS status ${r.status} (op ${last?.op ?? '-'})`);
    this.status = r.status;
  }
}

export class Nfs41Pipe {
  private readonly socket: Socket;
  private readonly parser = new RecordParser(8 * 1024 * 1024);
  private readonly waiting = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private readonly cred: OpaqueAuth;
  private xid = randomBytes(4).readUInt32BE(0) >>> 1;
  private sessionid: Buffer = Buffer.alloc(16);
  private seqs: number[] = [];
  private free: number[] = [];
  private readonly queue: ((slot: number) => void)[] = [];
  private dead: Error | undefined;
  /** The fore channel the server granted: max request/response bytes and slots. */
  fore = { maxRequest: 0, maxResponse: 0, slots: 0 };

  private constructor(socket: Socket, uid: number) {
    this.socket = socket;
    this.cred = { flavor: AUTH_FLAVOR.SYS, body: encodeAuthSys({ stamp: 1, machineName: 'nfs-bench', uid, gid: uid, gids: [] }) };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const rec of this.parser.push(chunk)) {
        const reply = decodeReply(rec);
        const w = this.waiting.get(reply.xid);
        if (!w) continue;
        this.waiting.delete(reply.xid);
        if (reply.reply.kind !== 'success') w.reject(new Error(`RPC ${reply.reply.kind}`));
        else w.resolve(reply.results);
      }
      if (this.parser.error) this.fail(this.parser.error);
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /** Connects, EXCHANGE_ID + CREATE_SESSION asking for `slots` slots, RECLAIM_COMPLETE. */
  static async open(port: number, o: { slots?: number; uid?: number } = {}): Promise<Nfs41Pipe> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    const p = new Nfs41Pipe(socket, o.uid ?? 0);
    await p.createSession(o.slots ?? 64);
    return p;
  }

  /** One COMPOUND as given (no SEQUENCE added); the raw COMPOUND4res parsed by client41's readers. */
  async raw(minor: number, list: OpEnc[]): Promise<CompoundReply> {
    if (this.dead) throw this.dead;
    const xid = (this.xid = (this.xid + 1) >>> 0);
    const w = new XdrWriter();
    encodeCall(w, { xid, prog: 100003, vers: 4, proc: NFSPROC4.COMPOUND, cred: this.cred });
    w.opaque(Buffer.alloc(0)).u32(minor).u32(list.length);
    for (const o of list) o.write(w);
    const chunks = w.chunksOut();
    let len = 0;
    for (const c of chunks) len += c.length;
    const reply = new Promise<Buffer>((resolve, reject) => this.waiting.set(xid, { resolve, reject }));
    this.socket.cork();
    this.socket.write(recordMark(len));
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
    return parseCompoundRes(await reply);
  }

  private acquire(): Promise<number> | number {
    const s = this.free.pop();
    if (s !== undefined) return s;
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(slot: number): void {
    const next = this.queue.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }

  /** SEQUENCE on a free slot + the operations; throws NfsStatusError unless NFS4_OK (or `allow`ed). */
  async call(list: OpEnc[], what = 'compound', allow: number[] = []): Promise<CompoundReply> {
    const slot = await this.acquire();
    try {
      const seqid = (this.seqs[slot] = ((this.seqs[slot] ?? 0) + 1) >>> 0);
      const seq: OpEnc = {
        op: OP.SEQUENCE,
        write: (w) => void w.u32(OP.SEQUENCE).opaqueFixed(this.sessionid).u32(seqid).u32(slot).u32(this.fore.slots - 1).bool(false),
      };
      const r = await this.raw(1, [seq, ...list]);
      if (r.status !== 0 && !allow.includes(r.status)) throw new NfsStatusError(what, r);
      return r;
    } finally {
      this.release(slot);
    }
  }

  private async createSession(slots: number): Promise<void> {
    const verifier = randomBytes(8);
    const ex = await this.raw(1, [
      { op: OP.EXCHANGE_ID, write: (w) => void w.u32(OP.EXCHANGE_ID).opaqueFixed(verifier).opaque(Buffer.from(`nfs-bench-${verifier.toString('hex')}`)).u32(0).u32(0).u32(0) },
    ]);
    if (ex.status !== 0) throw new NfsStatusError('EXCHANGE_ID', ex);
    const body = ex.results[0]!.body!;
    const channel = (w: XdrWriter, n: number): void => void w.u32(0).u32(2 * 1024 * 1024).u32(2 * 1024 * 1024).u32(64 * 1024).u32(32).u32(n).u32(0);
    const cs = await this.raw(1, [
      {
        op: OP.CREATE_SESSION,
        write: (w) => {
          w.u32(OP.CREATE_SESSION).u64(body.clientid as bigint).u32(body.seq as number).u32(0);
          channel(w, slots);
          channel(w, 1);
          // No back channel wanted: callback program, one AUTH_NONE security parameter.
          w.u32(0x40000000).u32(1).u32(AUTH_FLAVOR.NONE);
        },
      },
    ]);
    if (cs.status !== 0) throw new NfsStatusError('CREATE_SESSION', cs);
    const b = cs.results[0]!.body!;
    this.sessionid = b.sessionid as Buffer;
    const fore = b.fore as number[];
    this.fore = { maxRequest: fore[1]!, maxResponse: fore[2]!, slots: Math.max(1, Math.min(slots, fore[5]!)) };
    this.seqs = new Array<number>(this.fore.slots).fill(0);
    this.free = Array.from({ length: this.fore.slots }, (_, i) => this.fore.slots - 1 - i);
    await this.call([{ op: OP.RECLAIM_COMPLETE, write: (w) => void w.u32(OP.RECLAIM_COMPLETE).bool(false) }], 'RECLAIM_COMPLETE', [10063 /* COMPLETE_ALREADY */]);
  }

  close(): void {
    this.socket.destroy();
  }
}
