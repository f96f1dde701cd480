/**
 * Async replies (MS-SMB2 3.3.4.2) and CANCEL (3.3.5.16), per connection.
 *
 * A request that may wait without bound (a blocking LOCK, later CHANGE_NOTIFY) gets an AsyncId and
 * is answered twice: at once with an interim STATUS_PENDING response (ASYNC_COMMAND set, the
 * AsyncId in place of the TreeId; it grants credits like any response and is not signed, 3.3.4.2)
 * and later with the final response (the same MessageId and AsyncId, CreditResponse 0 as 3.3.4.3
 * requires; signed when the request was, encrypted when it was). Meanwhile the connection serves
 * its other requests. The final response is held until the interim one has been written, so it can
 * never overtake it.
 *
 * CANCEL is handled where a message arrives, before it joins the connection's queue (it must not
 * wait behind the request it cancels): with ASYNC_COMMAND it names an AsyncId, otherwise a
 * MessageId — of an async request, or of one not started yet, which then completes with
 * STATUS_CANCELLED when its turn comes if it is one that would wait (other requests are short and
 * complete normally, which 3.3.5.16 allows). CANCEL is never answered and spends no credit. As in
 * Samba (and as 3.2.4.24 lets clients do), an unsigned CANCEL is accepted even when signing is
 * required; a signed one whose signature does not verify is ignored. A CANCEL only reaches requests
 * of its own session.
 *
 * Bounds: MAX_ASYNC_PER_SESSION requests waiting per SMB session (past it the request fails with
 * STATUS_INSUFFICIENT_RESOURCES, as 3.3.4.2 allows); the MessageIds cancelled before their request
 * ran are a FIFO of MAX_EARLY_CANCELS per connection.
 */
import { Command, Flags, HEADER_BYTES, PROTOCOL_TRANSFORM, readHeader, type Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { tryDecode, type WireWriter } from '../wire.ts';
import { encodeErrorResponse } from '../messages/error.ts';
import { decodeTransformHeader, decryptMessage, signMessage, verifySignature } from '../crypto.ts';
import type { Conn, SmbServer, SmbSession } from './server.ts';

/** Requests one SMB session may have waiting at once. */
export const MAX_ASYNC_PER_SESSION = 256;
/** MessageIds cancelled before their request ran, remembered per connection. */
export const MAX_EARLY_CANCELS = 64;
/** An encrypted CANCEL is about 52 + 68 bytes; only messages this small are decrypted early to look. */
const SMALL_TRANSFORM = 52 + HEADER_BYTES + 64;

/** How the final response travels: signed with `key` when the request was signed, encrypted for `encryptedFor` when it was. */
export interface Delivery {
  key?: Buffer | undefined;
  encryptedFor?: { sess: SmbSession; sessionId: bigint } | undefined;
}

export interface AsyncFinal {
  status: number;
  body: (w: WireWriter) => void;
}

/** One request being processed asynchronously. */
export class AsyncOp {
  readonly abort = new AbortController();
  /** Set by CANCEL: the final status is STATUS_CANCELLED whatever the wait ended with. */
  cancelled = false;
  #final: AsyncFinal | undefined;
  #delivery: Delivery | undefined;
  #sent = false;

  readonly table: AsyncTable;
  readonly asyncId: bigint;
  readonly sess: SmbSession;
  readonly req: Smb2Header;

  constructor(table: AsyncTable, asyncId: bigint, sess: SmbSession, req: Smb2Header) {
    this.table = table;
    this.asyncId = asyncId;
    this.sess = sess;
    this.req = req;
  }

  /** The interim STATUS_PENDING response (3.3.4.2): credits granted as for any response, not signed. */
  interim(): Buffer {
    const { srv, conn } = this.table;
    return srv.response(conn, this.req, STATUS.PENDING, (w) => encodeErrorResponse(w), {
      flags: Flags.SERVER_TO_REDIR | Flags.ASYNC_COMMAND | (this.req.flags & Flags.RELATED_OPERATIONS),
      asyncId: this.asyncId,
    });
  }

  /** The interim response is out: the final one may follow (at once if it is ready). */
  arm(delivery: Delivery): void {
    this.#delivery = delivery;
    this.#flush();
  }

  /** The wait is over; `final` is answered once the interim response is out. */
  finish(final: AsyncFinal): void {
    if (this.#final) return;
    this.#final = this.cancelled ? { status: STATUS.CANCELLED, body: (w) => encodeErrorResponse(w) } : final;
    this.table.forget(this);
    this.#flush();
  }

  /** CANCEL: the wait is aborted and the request completes with STATUS_CANCELLED. */
  cancel(): void {
    if (this.#final) return;
    this.cancelled = true;
    this.abort.abort();
  }

  #flush(): void {
    if (this.#sent || !this.#final || !this.#delivery) return;
    this.#sent = true;
    const { srv, conn } = this.table;
    const f = this.#final;
    const resp = srv.response(conn, this.req, f.status, f.body, { flags: Flags.SERVER_TO_REDIR | Flags.ASYNC_COMMAND, asyncId: this.asyncId, credits: 0 });
    if (this.#delivery.key) signMessage(resp, this.#delivery.key, conn.signingAlgorithm);
    srv.transmit(conn, resp, this.#delivery.encryptedFor);
  }
}

/**
 * Why a request that would wait cannot go async now, or undefined when it may: a request in the
 * middle of a compound (NextCommand set) is failed with STATUS_INTERNAL_ERROR, as Windows does
 * (MS-SMB2 3.3.5.2.7: the server MAY fail requests in a compound chain that need asynchronous
 * processing; smbtorture smb2.compound.interim2). An interim response there would leave the rest
 * of the chain — and the client, which waits for the whole compound — hanging until the wait
 * ended, which for a CHANGE_NOTIFY may be never. The last element of a compound may go async
 * (smb2.compound.interim1).
 */
export function asyncRefusal(h: Smb2Header): number | undefined {
  return h.nextCommand !== 0 ? STATUS.INTERNAL_ERROR : undefined;
}

/** A connection's async requests and early cancels. */
export class AsyncTable {
  readonly #byAsyncId = new Map<bigint, AsyncOp>();
  readonly #perSession = new Map<bigint, number>();
  readonly #early: bigint[] = [];
  #nextAsyncId = 1n;
  /**
   * Small TRANSFORM messages intercept() decrypted and found not to be a CANCEL, by message: the
   * queue takes the plaintext from here (takePlaintext) instead of decrypting the message again.
   */
  readonly #opened = new WeakMap<Buffer, { plain: Buffer; sess: SmbSession }>();

  readonly srv: SmbServer;
  readonly conn: Conn;

  constructor(srv: SmbServer, conn: Conn) {
    this.srv = srv;
    this.conn = conn;
  }

  get size(): number {
    return this.#byAsyncId.size;
  }

  /** A new async request for `req`, or undefined when its session has MAX_ASYNC_PER_SESSION waiting. */
  start(sess: SmbSession, req: Smb2Header): AsyncOp | undefined {
    const n = this.#perSession.get(sess.id) ?? 0;
    if (n >= MAX_ASYNC_PER_SESSION) return undefined;
    this.#perSession.set(sess.id, n + 1);
    const op = new AsyncOp(this, this.#nextAsyncId++, sess, req);
    this.#byAsyncId.set(op.asyncId, op);
    return op;
  }

  forget(op: AsyncOp): void {
    if (!this.#byAsyncId.delete(op.asyncId)) return;
    const n = (this.#perSession.get(op.sess.id) ?? 1) - 1;
    if (n <= 0) this.#perSession.delete(op.sess.id);
    else this.#perSession.set(op.sess.id, n);
  }

  /** Whether a CANCEL for `messageId` arrived before its request ran (it is then forgotten). */
  takeCancelled(messageId: bigint): boolean {
    const i = this.#early.indexOf(messageId);
    if (i < 0) return false;
    this.#early.splice(i, 1);
    return true;
  }

  /** CANCEL (3.3.5.16), its header already trusted (signature checked or skipped). */
  cancel(h: Smb2Header): void {
    if (h.flags & Flags.ASYNC_COMMAND) {
      const op = this.#byAsyncId.get(h.asyncId);
      if (op && op.sess.id === h.sessionId) op.cancel();
      return;
    }
    for (const op of this.#byAsyncId.values()) {
      if (op.req.messageId === h.messageId && op.sess.id === h.sessionId) return op.cancel();
    }
    // Not started yet (queued behind other work): remembered for when it runs. Only ids the client
    // was granted; an id spent and finished already is never used again, so it matches nothing.
    if (h.messageId >= this.conn.seqHigh) return;
    if (this.#early.length >= MAX_EARLY_CANCELS) this.#early.shift();
    this.#early.push(h.messageId);
  }

  /**
   * A CANCEL in `el` (one element, the message's only one or part of a compound) from the
   * connection: trusted when unsigned, or signed and verified with its session's key; ignored
   * otherwise. Encrypted ones arrive decrypted.
   */
  cancelElement(h: Smb2Header, el: Buffer, encrypted: boolean): void {
    if (!encrypted && h.flags & Flags.SIGNED) {
      const sess = this.conn.sessions.get(h.sessionId);
      if (!sess?.keys || !verifySignature(el, sess.keys.signingKey, this.conn.signingAlgorithm)) return;
    }
    this.cancel(h);
  }

  /**
   * Looks at a message as it arrives: a lone CANCEL (plain, or encrypted under one of the
   * connection's sessions) is handled at once and not queued. Returns whether it was. Never
   * throws (it runs in the socket's data handler): anything it cannot read is left to the queue.
   */
  /**
   * The plaintext intercept() found in `msg`, once, when `sess` (the session the queue finds for
   * it now) is the one it was decrypted under: its key is the same (a session's keys never change),
   * so the answer is what decrypting again would give.
   */
  takePlaintext(msg: Buffer, sess: SmbSession): Buffer | undefined {
    const o = this.#opened.get(msg);
    if (o === undefined) return undefined;
    this.#opened.delete(msg);
    return o.sess === sess ? o.plain : undefined;
  }

  intercept(msg: Buffer): boolean {
    try {
      return this.#intercept(msg);
    } catch {
      return false;
    }
  }

  #intercept(msg: Buffer): boolean {
    if (msg.length < 4) return false;
    if (msg.readUInt32LE(0) === PROTOCOL_TRANSFORM) {
      if (msg.length > SMALL_TRANSFORM || !this.conn.cipher) return false;
      const t = tryDecode(() => decodeTransformHeader(msg));
      const sess = t.ok ? this.conn.sessions.get(t.value.sessionId) : undefined;
      if (!t.ok || !sess?.keys) return false;
      const plain = decryptMessage(msg, sess.keys.decryptionKey, this.conn.cipher);
      if (!plain) return false;
      const h = lone(plain);
      if (!h || h.command !== Command.CANCEL) {
        this.#opened.set(msg, { plain, sess });
        return false;
      }
      this.cancelElement(h, plain, true);
      return true;
    }
    // Anything but a CANCEL goes to the queue: told by its Command field before decoding the header
    // (every request passes here; lone() would decode it once more than onMessage does).
    if (msg.length >= 64 && msg.readUInt16LE(12) !== Command.CANCEL) return false;
    const h = lone(msg);
    if (!h || h.command !== Command.CANCEL) return false;
    this.cancelElement(h, msg, false);
    return true;
  }
}

/** The header of a message holding one SMB2 request, or undefined. */
function lone(msg: Buffer): Smb2Header | undefined {
  const d = tryDecode(() => readHeader(msg));
  return d.ok && d.value.nextCommand === 0 && !(d.value.flags & Flags.SERVER_TO_REDIR) ? d.value : undefined;
}

const tables = new WeakMap<Conn, AsyncTable>();

/** The connection's async table (made on first use). */
export function asyncTable(srv: SmbServer, conn: Conn): AsyncTable {
  let t = tables.get(conn);
  if (!t) tables.set(conn, (t = new AsyncTable(srv, conn)));
  return t;
}
