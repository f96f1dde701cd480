/**
 * ONC RPC record marking over TCP (RFC 5531 §11): a record is one or more fragments, each with a
 * 4-byte header whose top bit marks the last fragment and whose low 31 bits give its length.
 *
 * The parser reassembles fragments across TCP segments and refuses a record whose total size
 * (fragment bodies plus their headers) passes `maxRecordBytes` as soon as a header announces it,
 * before buffering it: a client cannot make the server hold more than one bounded record per
 * connection. A record that lies wholly inside one incoming chunk is returned as a subarray of
 * that chunk (no copy); otherwise its pieces are concatenated once.
 *
 * An oversized record gets no reply: RFC 5531 gives the server no way to answer a record it did
 * not read, so the connection is closed (the caller's job, when `error` is set). Records completed
 * before it in the same input are still returned, so the calls a client sent first are answered.
 */
import { giveBackRecord, takeRecordBuffer } from './record-buffers.ts';

/** Default bound: a 1 MiB WRITE or READ plus room for the RPC and COMPOUND headers around it. */
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024 + 64 * 1024;
const LAST_FRAGMENT = 0x8000_0000;
const HEADER = 4;

export class RecordMarkingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordMarkingError';
  }
}

/** Prepends the record mark of a single-fragment record (replies are always one fragment). */
export function recordMark(length: number): Buffer {
  if (length < 0 || length > 0x7fff_ffff) throw new RecordMarkingError(`record of ${length} bytes cannot be one fragment`);
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0);
  return h;
}

/** Frames a whole record as fragments of at most `fragment` bytes (tests and clients). */
export function frameRecord(record: Buffer, fragment = 0x7fff_ffff): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  do {
    const n = Math.min(fragment, record.length - at);
    const last = at + n >= record.length;
    const h = Buffer.allocUnsafe(HEADER);
    h.writeUInt32BE(((last ? LAST_FRAGMENT : 0) | n) >>> 0, 0);
    parts.push(h, record.subarray(at, at + n));
    at += n;
  } while (at < record.length);
  return Buffer.concat(parts);
}

export class RecordParser {
  readonly maxRecordBytes: number;
  private header = Buffer.alloc(HEADER);
  private headerHave = 0;
  /** Bytes of the current fragment still to come; -1 while reading a header. */
  private fragLeft = -1;
  private fragLast = false;
  /** Pieces of the record being assembled and their total (bodies plus headers, for the bound). */
  private pieces: Buffer[] = [];
  /**
   * A large single-fragment record (a WRITE) is received into a pooled buffer (record-buffers.ts)
   * from its header on: socket reads may land in it directly (landingZone/landed), else push()
   * copies into it; `destHave` bytes of it are there.
   */
  private dest: Buffer | undefined;
  /** Set by a connection whose reads may land in the parser's buffers (rpc-server.ts); off, a record read whole in one chunk stays a view of it. */
  receivesInPlace = false;
  private destHave = 0;
  private bodyBytes = 0;
  private wireBytes = 0;
  private failure: RecordMarkingError | undefined;

  constructor(maxRecordBytes = DEFAULT_MAX_RECORD_BYTES) {
    this.maxRecordBytes = maxRecordBytes;
  }

  /** Bytes held for an incomplete record (for per-connection accounting). */
  get buffered(): number {
    // A record received in place holds its whole pooled buffer from its header on: that counts
    // (the server's budget for incomplete records bounds what a client can make it reserve with
    // bare headers), not just the bytes received so far.
    return (this.dest !== undefined ? this.dest.length : this.bodyBytes) + this.headerHave;
  }

  /** Drops any incomplete record (the connection is going away). */
  reset(): void {
    if (this.dest) giveBackRecord(this.dest);
    this.dest = undefined;
    this.destHave = 0;
    this.pieces = [];
    this.bodyBytes = 0;
    this.wireBytes = 0;
    this.headerHave = 0;
    this.fragLeft = -1;
    this.fragLast = false;
  }

  /** Set once a record over the bound was announced; the stream is then dead (input ignored). */
  get error(): RecordMarkingError | undefined {
    return this.failure;
  }

  /**
   * Feeds bytes from the stream; returns the records completed by them, in order. Never throws:
   * a record over the bound sets `error` (the records completed before it are still returned) and
   * every later input is ignored.
   */
  /**
   * Where the next socket read may land directly (zero-copy receive, rpc-server.ts): the rest of
   * the large record's fragment being received, at most what it still lacks, so a read never takes
   * bytes of the next record; undefined when the next read must go through push().
   */
  landingZone(): Buffer | undefined {
    if (this.failure || this.dest === undefined || this.fragLeft <= 0) return undefined;
    return this.dest.subarray(this.destHave, this.destHave + this.fragLeft);
  }

  /** `n` bytes were read straight into landingZone(): the record, once nothing lacks. */
  landed(n: number): Buffer[] {
    if (this.dest === undefined || n > this.fragLeft) throw new RangeError('landed() without a landing zone');
    this.destHave += n;
    this.bodyBytes += n;
    this.fragLeft -= n;
    return this.fragLeft === 0 ? [this.finish()] : [];
  }

  /**
   * `transient`: the chunk's memory is reused after this call (a connection's read buffer), so
   * bytes a record keeps are copied out of it instead of kept as views.
   */
  push(chunk: Buffer, transient = false): Buffer[] {
    const out: Buffer[] = [];
    if (this.failure) return out;
    let at = 0;
    while (at < chunk.length) {
      if (this.fragLeft < 0) {
        // Fast path: a whole header in this chunk.
        if (this.headerHave === 0 && chunk.length - at >= HEADER) {
          const ok = this.startFragment(chunk.readUInt32BE(at));
          at += HEADER;
          if (!ok) break;
        } else {
          const take = Math.min(HEADER - this.headerHave, chunk.length - at);
          chunk.copy(this.header, this.headerHave, at, at + take);
          this.headerHave += take;
          at += take;
          if (this.headerHave < HEADER) break;
          this.headerHave = 0;
          if (!this.startFragment(this.header.readUInt32BE(0))) break;
        }
        if (this.fragLeft === 0 && this.fragLast) out.push(this.finish());
        continue;
      }
      const take = Math.min(this.fragLeft, chunk.length - at);
      if (take > 0) {
        if (this.dest !== undefined) {
          chunk.copy(this.dest, this.destHave, at, at + take);
          this.destHave += take;
        } else this.pieces.push(transient ? Buffer.from(chunk.subarray(at, at + take)) : chunk.subarray(at, at + take));
        this.bodyBytes += take;
        this.fragLeft -= take;
        at += take;
      }
      if (this.fragLeft === 0) {
        if (this.fragLast) out.push(this.finish());
        else this.fragLeft = -1;
      }
    }
    return out;
  }

  /** Starts a fragment from its header; false (and `error` set) when the record passes the bound. */
  private startFragment(h: number): boolean {
    const len = h & 0x7fff_ffff;
    this.fragLast = (h & LAST_FRAGMENT) !== 0;
    this.wireBytes += HEADER + len;
    if (this.wireBytes > this.maxRecordBytes) {
      this.reset();
      this.failure = new RecordMarkingError(`record of more than ${this.maxRecordBytes} bytes (limit) announced`);
      return false;
    }
    this.fragLeft = len;
    if (len === 0 && !this.fragLast) this.fragLeft = -1;
    // A record in one fragment, large enough for a pooled buffer: received straight into it.
    else if (this.receivesInPlace && this.fragLast && this.bodyBytes === 0 && len > 0) {
      this.dest = takeRecordBuffer(len);
      this.destHave = 0;
    }
    return true;
  }

  private finish(): Buffer {
    const pieces = this.pieces;
    let rec: Buffer;
    if (this.dest !== undefined) {
      rec = this.dest;
      this.dest = undefined;
      this.destHave = 0;
    } else if (pieces.length === 1 && pieces[0]) rec = pieces[0];
    else {
      // Several pieces (a large WRITE): one copy, into a pooled buffer when it fits (record-buffers.ts).
      const pooled = takeRecordBuffer(this.bodyBytes);
      if (pooled) {
        let at = 0;
        for (const p of pieces) at += p.copy(pooled, at);
        rec = pooled;
      } else rec = Buffer.concat(pieces, this.bodyBytes);
    }
    this.pieces = [];
    this.bodyBytes = 0;
    this.wireBytes = 0;
    this.fragLeft = -1;
    this.fragLast = false;
    return rec;
  }
}
