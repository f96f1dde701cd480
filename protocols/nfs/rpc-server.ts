/**
 * ONC RPC server over TCP (node:net): record marking in, calls dispatched to registered
 * program/version/procedure handlers, replies out in whatever order they complete.
 *
 * Per connection, everything is bounded:
 * - one incomplete record of at most `maxRecordBytes` (record-marking.ts); a larger one gets no
 *   reply (RFC 5531 has none for a record not read): the calls read before it are answered, then
 *   the connection ends;
 * - at most `maxOutstanding` calls running; records past that wait in a backlog while reading
 *   is paused, so the backlog is at most what one socket read delivered;
 * - replies the client does not read: once `maxBufferedReplyBytes` are queued on the socket,
 *   reading stops until it drains, so a client that never reads its replies holds at most that
 *   plus the replies of its outstanding calls — the kernel's socket buffers then push back on it;
 * - an idle connection (no bytes either way for `idleTimeoutMs`, no call running) is closed.
 * Across connections, incomplete records together hold at most `maxPartialBytes`: the connection
 * whose data would pass it is closed (many clients each holding a large half-sent record would
 * otherwise hold connections × maxRecordBytes).
 * Connections are independent: a slow or stuck client only ever waits on itself.
 *
 * No input crashes the server: decoding is total (rpc.ts), a handler's exception becomes
 * SYSTEM_ERR for that call, socket errors close that socket only.
 */
import { Socket, createServer, type AddressInfo, type Server } from 'node:net';
import { receiveInPlace } from '../../src/util/receive-in-place.ts';
import { DEFAULT_MAX_RECORD_BYTES, RecordParser } from './record-marking.ts';
import { releaseSent } from './read-buffers.ts';
import { AUTH_STAT, decodeCall, encodeReplyHeader, type RpcCall, type RpcReply } from './rpc.ts';
import { XdrWriter } from './xdr.ts';

export interface RpcConnectionInfo {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Aborted when the connection closes: long calls can stop early. */
  readonly signal: AbortSignal;
}

/** What a procedure answers: its results (written after the reply header) or an accept error. */
export type RpcOutcome =
  /** `sent`: called once the reply has been written (or the write failed): the call's buffers may be reused. */
  | { kind: 'success'; encode: (w: XdrWriter) => void; sent?: () => void }
  | { kind: 'garbage_args' }
  | { kind: 'system_err' }
  | { kind: 'auth_error'; stat: number };

export type RpcProcedure = (call: RpcCall, conn: RpcConnectionInfo) => RpcOutcome | Promise<RpcOutcome>;

export interface RpcVersion {
  procedures: ReadonlyMap<number, RpcProcedure>;
  /**
   * Whether a call's credential may use this procedure: AUTH_OK, or the auth_stat to refuse it
   * with (AUTH_TOOWEAK for AUTH_NONE where AUTH_SYS is required). Absent: every flavor rpc.ts
   * decodes is accepted.
   */
  checkAuth?: (call: RpcCall) => number;
}

export interface RpcProgram {
  prog: number;
  versions: ReadonlyMap<number, RpcVersion>;
}

/** pino-compatible, optional. */
export interface RpcLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RpcServerOptions {
  maxRecordBytes?: number;
  maxOutstanding?: number;
  maxBufferedReplyBytes?: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
  maxPartialBytes?: number;
  logger?: RpcLogger;
}

export const RPC_SERVER_DEFAULTS = {
  maxRecordBytes: DEFAULT_MAX_RECORD_BYTES,
  /** Linux's 4.0 client keeps up to 64 RPC slots per transport by default; 4.1 negotiates less. */
  maxOutstanding: 128,
  maxBufferedReplyBytes: 4 * 1024 * 1024,
  /** Linux's nfsd closes idle TCP connections after 6 minutes; clients reconnect at once. */
  idleTimeoutMs: 6 * 60_000,
  maxConnections: 4096,
  /** 512 concurrent 1 MiB WRITEs in flight at once, far past what a few clients send. */
  maxPartialBytes: 512 * 1024 * 1024,
} as const;

export interface RpcConnectionStats {
  id: number;
  outstanding: number;
  backlog: number;
  writableLength: number;
  readingPaused: boolean;
  partialRecordBytes: number;
}

const LAST_FRAGMENT = 0x8000_0000;
const MAX_FRAGMENT = 0x7fff_ffff;
const NOOP_LOGGER: RpcLogger = { debug() {}, warn() {} };

export class RpcServer {
  private readonly programs = new Map<number, RpcProgram>();
  private readonly opts: Required<Omit<RpcServerOptions, 'logger'>>;
  private readonly log: RpcLogger;
  private readonly server: Server;
  private readonly conns = new Set<RpcConnection>();
  private nextId = 1;
  /** Bytes of incomplete records held by all connections. */
  partialBytes = 0;

  constructor(programs: readonly RpcProgram[], options: RpcServerOptions = {}) {
    for (const p of programs) this.programs.set(p.prog, p);
    this.opts = {
      maxRecordBytes: options.maxRecordBytes ?? RPC_SERVER_DEFAULTS.maxRecordBytes,
      maxOutstanding: options.maxOutstanding ?? RPC_SERVER_DEFAULTS.maxOutstanding,
      maxBufferedReplyBytes: options.maxBufferedReplyBytes ?? RPC_SERVER_DEFAULTS.maxBufferedReplyBytes,
      idleTimeoutMs: options.idleTimeoutMs ?? RPC_SERVER_DEFAULTS.idleTimeoutMs,
      maxConnections: options.maxConnections ?? RPC_SERVER_DEFAULTS.maxConnections,
      maxPartialBytes: options.maxPartialBytes ?? RPC_SERVER_DEFAULTS.maxPartialBytes,
    };
    this.log = options.logger ?? NOOP_LOGGER;
    // Accepted sockets start paused: accept() re-makes them with read buffers of the connection's first.
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.server.maxConnections = this.opts.maxConnections;
    this.server.on('error', (e) => this.log.warn({ err: e }, 'rpc listener error'));
  }

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops listening and closes every connection (outstanding calls' replies are dropped). */
  close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  stats(): RpcConnectionStats[] {
    return [...this.conns].map((c) => c.stats());
  }

  private accept(accepted: Socket): void {
    // Adopted sockets leave net.Server's count (receiveInPlace): the bound is kept here too.
    if (this.conns.size >= this.opts.maxConnections) {
      accepted.destroy();
      return;
    }
    // Reads land in a 64 KiB buffer of the connection's, or straight in the large record being
    // received (RecordParser.landingZone); where the socket cannot be adopted, 'data' events.
    const scratch = Buffer.allocUnsafe(64 * 1024);
    let conn: RpcConnection | undefined;
    const adopted = receiveInPlace(accepted, {
      buffer: () => conn?.landingZone() ?? scratch,
      callback: (n, buf) => {
        conn?.received(n, buf as Buffer, buf === scratch);
        return true;
      },
    });
    const socket = adopted ?? accepted;
    conn = new RpcConnection(this.nextId++, socket, this, this.opts, this.log, adopted !== undefined);
    this.conns.add(conn);
    const c = conn;
    socket.once('close', () => this.conns.delete(c));
    if (!adopted) accepted.resume();
  }

  /** Program/version/procedure/auth checks: the procedure to run, or the rejection. */
  route(call: RpcCall): RpcProcedure | RpcReply {
    const p = this.programs.get(call.prog);
    if (!p) return { kind: 'prog_unavail' };
    const v = p.versions.get(call.vers);
    if (!v) {
      let low = Infinity;
      let high = -Infinity;
      for (const n of p.versions.keys()) {
        low = Math.min(low, n);
        high = Math.max(high, n);
      }
      return { kind: 'prog_mismatch', low, high };
    }
    const proc = v.procedures.get(call.proc);
    if (!proc) return { kind: 'proc_unavail' };
    if (v.checkAuth) {
      const stat = v.checkAuth(call);
      if (stat !== AUTH_STAT.OK) return { kind: 'auth_error', stat };
    }
    return proc;
  }
}


class RpcConnection {
  private readonly parser: RecordParser;
  private readonly info: RpcConnectionInfo;
  private readonly abort = new AbortController();
  private outstanding = 0;
  private readonly backlog: Buffer[] = [];
  private readingPaused = false;
  private closed = false;
  /** A record was refused: answer what was read before it, read nothing more, then end. */
  private closing = false;
  readonly id: number;
  private readonly socket: Socket;
  private readonly server: RpcServer;
  /** Reply chunks waiting for the flush, in completion order, and their bytes. */
  private out: Buffer[] = [];
  private outBytes = 0;
  /** `sent` hooks of the replies in `out` (RpcOutcome), run once the writev carrying them is done. */
  private sentHooks: (() => void)[] = [];
  private flushQueued = false;
  /** The parser's incomplete bytes after the last read (partial-record accounting). */
  private parsedBefore = 0;
  private readonly opts: Required<Omit<RpcServerOptions, 'logger'>>;
  private readonly log: RpcLogger;

  constructor(id: number, socket: Socket, server: RpcServer, opts: Required<Omit<RpcServerOptions, 'logger'>>, log: RpcLogger, inPlace = false) {
    this.id = id;
    this.socket = socket;
    this.server = server;
    this.opts = opts;
    this.log = log;
    this.parser = new RecordParser(opts.maxRecordBytes);
    this.parser.receivesInPlace = inPlace;
    this.info = {
      id,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      signal: this.abort.signal,
    };
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs);
    if (!inPlace) socket.on('data', (chunk: Buffer) => this.closed || this.closing || this.onData(this.parser.push(chunk)));
    socket.on('drain', () => this.pump());
    socket.on('timeout', () => {
      if (this.outstanding === 0) {
        this.log.debug({ conn: id }, 'rpc connection idle, closing');
        this.destroy();
      }
    });
    socket.on('error', (e) => this.log.debug({ conn: id, err: e }, 'rpc socket error'));
    socket.on('close', () => {
      this.server.partialBytes -= this.parsedBefore;
      this.parsedBefore = 0;
      this.parser.reset();
      this.closed = true;
      this.backlog.length = 0;
      this.abort.abort();
    });
  }

  stats(): RpcConnectionStats {
    return {
      id: this.id,
      outstanding: this.outstanding,
      backlog: this.backlog.length,
      writableLength: this.socket.writableLength + this.outBytes,
      readingPaused: this.readingPaused,
      partialRecordBytes: this.parser.buffered,
    };
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  /** Where the next read may land (receiveInPlace): the large record being received, if any. */
  landingZone(): Buffer | undefined {
    return this.closed || this.closing ? undefined : this.parser.landingZone();
  }

  /** `n` bytes read into `buf`: the connection's reused buffer (`transient`) or the landing zone. */
  received(n: number, buf: Buffer, transient: boolean): void {
    if (this.closed || this.closing || n <= 0) return;
    this.onData(transient ? this.parser.push(buf.subarray(0, n), true) : this.parser.landed(n));
  }

  /** Records completed by a read; `buffered` held the parser's incomplete bytes before it. */
  private onData(records: Buffer[]): void {
    if (this.closed || this.closing) return;
    const after = this.parser.buffered;
    const before = this.parsedBefore;
    this.parsedBefore = after;
    this.server.partialBytes += after - before;
    for (const rec of records) this.backlog.push(rec);
    if (this.parser.error) {
      this.log.warn({ conn: this.id, remote: this.info.remoteAddress, err: this.parser.error.message }, 'rpc record refused, closing connection');
      this.closing = true;
    } else if (after > 0 && this.server.partialBytes > this.opts.maxPartialBytes) {
      this.log.warn({ conn: this.id, remote: this.info.remoteAddress, held: this.server.partialBytes }, 'rpc partial records over the server budget, closing connection');
      this.server.partialBytes -= after;
      this.parsedBefore = 0;
      this.parser.reset();
      this.closing = true;
    }
    this.pump();
  }

  /** Starts waiting calls while there is room, then pauses or resumes reading to match. */
  private pump(): void {
    if (this.closed) return;
    while (this.backlog.length > 0 && this.outstanding < this.opts.maxOutstanding && !this.writeBlocked()) {
      const rec = this.backlog.shift() as Buffer;
      this.outstanding++;
      void this.run(rec);
    }
    if (this.closing) {
      // Calls read before the refused record are answered, then the connection ends.
      if (!this.readingPaused) {
        this.readingPaused = true;
        this.socket.pause();
      }
      if (this.backlog.length === 0 && this.outstanding === 0) this.endNow();
      return;
    }
    const pause = this.backlog.length > 0 || this.writeBlocked();
    if (pause && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    } else if (!pause && this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  /**
   * At or past the bound, the last write() returned false (the bound is never below the socket's
   * high-water mark), so 'drain' will come and resume reading; replies waiting for the flush
   * count too (the flush pumps again).
   */
  private writeBlocked(): boolean {
    return this.socket.writableLength + this.outBytes >= Math.max(this.opts.maxBufferedReplyBytes, this.socket.writableHighWaterMark);
  }

  /** Ends the connection once its queued replies are written (destroyed after 1 s at most). */
  private endNow(): void {
    this.flush();
    this.closed = true;
    this.backlog.length = 0;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private async run(rec: Buffer): Promise<void> {
    try {
      const d = decodeCall(rec);
      if (d.kind === 'drop') {
        this.log.debug({ conn: this.id, reason: d.reason }, 'rpc record dropped');
        return;
      }
      if (d.kind === 'reject') {
        this.log.debug({ conn: this.id, xid: d.xid, reason: d.reason, reply: d.reply.kind }, 'rpc call rejected');
        this.send(d.xid, d.reply);
        return;
      }
      const call = d.call;
      const route = this.server.route(call);
      if (typeof route !== 'function') {
        this.log.debug({ conn: this.id, xid: call.xid, prog: call.prog, vers: call.vers, proc: call.proc, reply: route.kind }, 'rpc call rejected');
        this.send(call.xid, route);
        return;
      }
      let outcome: RpcOutcome;
      try {
        outcome = await route(call, this.info);
      } catch (e) {
        this.log.warn({ conn: this.id, xid: call.xid, proc: call.proc, err: e }, 'rpc procedure failed');
        outcome = { kind: 'system_err' };
      }
      if (outcome.kind === 'success') this.send(call.xid, { kind: 'success' }, outcome.encode, outcome.sent);
      else if (outcome.kind === 'auth_error') this.send(call.xid, { kind: 'auth_error', stat: outcome.stat });
      else this.send(call.xid, { kind: outcome.kind });
    } catch (e) {
      // Nothing above should throw; if an encoder does, this call fails, not the connection.
      this.log.warn({ conn: this.id, err: e }, 'rpc call failed unexpectedly');
    } finally {
      this.outstanding--;
      this.pump();
    }
  }

  private send(xid: number, reply: RpcReply, encode?: (w: XdrWriter) => void, sent?: () => void): void {
    if (this.closed || this.socket.destroyed) return;
    let w = new XdrWriter();
    let mark = w.reserveU32();
    encodeReplyHeader(w, xid, reply);
    if (encode) {
      try {
        encode(w);
      } catch (e) {
        this.log.warn({ conn: this.id, xid, err: e }, 'rpc reply encoding failed');
        w = new XdrWriter();
        mark = w.reserveU32();
        encodeReplyHeader(w, xid, { kind: 'system_err' });
      }
    }
    const length = w.length - 4;
    if (length > MAX_FRAGMENT) {
      w = new XdrWriter();
      mark = w.reserveU32();
      encodeReplyHeader(w, xid, { kind: 'system_err' });
      w.patchU32(mark, (LAST_FRAGMENT | (w.length - 4)) >>> 0);
    } else {
      w.patchU32(mark, (LAST_FRAGMENT | length) >>> 0);
    }
    for (const c of w.chunksOut()) this.out.push(c);
    if (sent) this.sentHooks.push(sent);
    this.outBytes += w.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Writes the replies completed since the last flush as one writev. The flush runs in the event
   * loop's check phase (setImmediate), right after the poll phase whose callbacks completed them,
   * so replies that complete together — a socket read's worth of cached GETATTRs, and the calls
   * whose thread-pool stats, opens and fsyncs finished in the same poll — leave in one syscall
   * instead of one each (a write per reply was the largest single cost of a small call); no reply
   * waits for another turn of the loop. (A flush at the end of the tick, process.nextTick, wrote
   * each thread-pool completion's reply alone: the small-file cycle's replies were ~12% of the
   * server's CPU in write syscalls.) Pooled READ buffers among them can be reused once written
   * (read-buffers.ts). Then the write bound is checked again (pump).
   */
  private readonly flush = (): void => {
    this.flushQueued = false;
    const out = this.out;
    if (out.length === 0) return;
    this.out = [];
    this.outBytes = 0;
    const hooks = this.sentHooks;
    if (hooks.length > 0) this.sentHooks = [];
    if (this.socket.destroyed) return;
    const done =
      hooks.length === 0
        ? () => releaseSent(out)
        : () => {
            releaseSent(out);
            for (const h of hooks) h();
          };
    if (out.length === 1) {
      this.socket.write(out[0] as Buffer, hooks.length > 0 ? done : undefined);
    } else {
      this.socket.cork();
      const last = out.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(out[i] as Buffer);
      this.socket.write(out[last] as Buffer, done);
      this.socket.uncork();
    }
    if (!this.closed) this.pump();
  };
}
