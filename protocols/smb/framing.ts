/**
 * SMB2 Direct TCP transport framing (MS-SMB2 2.1): each message is preceded by 4 bytes, a zero
 * byte and a 24-bit big-endian length.
 *
 * A bounded stream parser: the length is checked against `maxMessageBytes` as soon as the header
 * is read, before a byte of the body is buffered, so a connection holds at most one bounded
 * message. It never throws: a bad header (a non-zero first byte, an empty or oversized message)
 * is returned as an error value, after which the parser refuses further input and the connection
 * is to be closed (there is no way to answer a message that was not read; Windows and Samba drop
 * the connection too). A message wholly inside one chunk is a view of that chunk (no copy).
 */

/** 8 MiB of READ/WRITE payload plus room for the SMB2 header, the command and a TRANSFORM_HEADER. */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024 + 64 * 1024;
/** The 24-bit length field's own ceiling. */
export const MAX_FRAME_LENGTH = 0xff_ffff;
const HEADER = 4;

export interface FrameError {
  kind: 'bad-header' | 'too-large' | 'empty' | 'failed';
  message: string;
}

export interface FramePush {
  messages: Buffer[];
  /** Set when the stream is broken: the messages before it are still valid, nothing after. */
  error?: FrameError;
}

/** Prepends the Direct TCP header to one message. */
export function frameHeader(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_LENGTH) throw new RangeError(`SMB2 message of ${length} bytes cannot be framed`);
  const h = Buffer.alloc(HEADER);
  h.writeUInt32BE(length, 0);
  return h;
}

export function frame(message: Buffer): Buffer {
  return Buffer.concat([frameHeader(message.length), message]);
}

/** What `writeFramed` needs of a socket. */
export interface FrameSink {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean;
}

/**
 * Writes one message given as pieces, with its Direct TCP header, without joining them: the socket
 * is corked around the writes, so the pieces leave in one writev (a 1 MiB READ payload goes from
 * the buffer the backend filled straight to the kernel).
 */
export function writeFramed(sock: FrameSink, pieces: readonly Buffer[], written?: () => void): void {
  let length = 0;
  for (const p of pieces) length += p.length;
  const header = frameHeader(length);
  // `written` runs once the socket is done with the pieces (their buffers may then be reused).
  const cb = written && ((): void => written());
  if (length < 16 * 1024) {
    // A small message (every response but a large READ's; a 4 KiB READ's head and payload too) is
    // copied once behind its header and written in one call: no cork, no writev, no write request
    // per piece. The pieces are not referred to after the copy, so `written` runs at once.
    const out = Buffer.allocUnsafe(HEADER + length);
    out.writeUInt32BE(length, 0);
    let at = HEADER;
    for (const p of pieces) at += p.copy(out, at);
    sock.write(out);
    return written?.();
  }
  sock.cork();
  sock.write(header);
  const last = pieces.length - 1;
  pieces.forEach((p, i) => (p.length || i === last) && sock.write(p, i === last ? cb : undefined));
  sock.uncork();
}

/**
 * Large message buffers kept for reuse, per connection: a WRITE's 8 MiB is received into the
 * buffer the previous one freed instead of a new allocation each time (a fresh ArrayBuffer is
 * page-faulted in and, outside the JS heap, left to full GCs). A buffer is given back only by
 * the one who knows nothing refers to it any more (the server, once a READ or WRITE is answered,
 * or once a TRANSFORM_HEADER message is decrypted). The buffers are SharedArrayBuffers, so the
 * seal worker (seal-worker.ts) can encrypt or decrypt a message where it lies.
 */
export class MessagePool {
  private readonly free: SharedArrayBuffer[] = [];
  private readonly mine = new WeakSet<ArrayBufferLike>();
  /** Messages smaller than this are not pooled. */
  readonly minBytes: number;
  readonly maxBuffers: number;
  constructor(minBytes = 256 * 1024, maxBuffers = 4) {
    this.minBytes = minBytes;
    this.maxBuffers = maxBuffers;
  }

  alloc = (length: number): Buffer => {
    if (length < this.minBytes) return Buffer.allocUnsafe(length);
    const i = this.free.findIndex((b) => b.byteLength >= length);
    const ab = i >= 0 ? this.free.splice(i, 1)[0]! : new SharedArrayBuffer(length);
    this.mine.add(ab);
    return Buffer.from(ab, 0, length);
  };

  /** Whether a message (or a view into one) lies in a buffer from alloc not given back yet. */
  owns(message: Buffer): boolean {
    return this.mine.has(message.buffer);
  }

  /**
   * Gives a message's buffer back (the message or any view into it: a decrypted-in-place message
   * is a view past its TRANSFORM_HEADER); anything not from alloc, or given back twice, is ignored.
   */
  release(message: Buffer): void {
    const ab = message.buffer;
    if (!(ab instanceof SharedArrayBuffer) || !this.mine.has(ab)) return;
    this.mine.delete(ab);
    if (this.free.length < this.maxBuffers) this.free.push(ab);
  }
}

export class FrameParser {
  readonly maxMessageBytes: number;
  private header = Buffer.alloc(HEADER);
  private headerHave = 0;
  /** Body bytes still to come; -1 while reading a header. */
  private left = -1;
  private pieces: Buffer[] = [];
  private have = 0;
  /**
   * A message that spans chunks is copied into one buffer as its chunks arrive (the same one copy
   * a join at the end makes), so no chunk outlives the read that brought it: an 8 MiB WRITE held
   * as 128 socket chunks until its last one arrived kept them alive across young-generation GCs,
   * promoted them, and left them to full collections (most of an SMB put's CPU).
   */
  private dest: Buffer | undefined;
  private failed: FrameError | undefined;

  /** Where a message spanning chunks is copied to (a pool's buffer, or a new one). */
  private readonly alloc: (length: number) => Buffer;

  constructor(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES, alloc: (length: number) => Buffer = Buffer.allocUnsafe) {
    this.maxMessageBytes = Math.min(maxMessageBytes, MAX_FRAME_LENGTH);
    this.alloc = alloc;
  }

  /** Bytes held for an incomplete message (per-connection accounting). */
  get buffered(): number {
    return this.have + this.headerHave;
  }

  /**
   * Where the next socket read may land directly (zero-copy receive, server.ts): the rest of a
   * large message being received, at most what it still lacks so that a read never takes bytes of
   * the next message; undefined when the next read must go through push() (a header, a small
   * message, a failed stream).
   */
  landingZone(): Buffer | undefined {
    if (this.failed || this.dest === undefined || this.left <= 0) return undefined;
    return this.dest.subarray(this.have, this.have + this.left);
  }

  /** `n` bytes were read straight into landingZone(): the message is complete once nothing lacks. */
  landed(n: number): FramePush {
    if (this.dest === undefined || n > this.left) throw new RangeError('landed() without a landing zone');
    this.have += n;
    this.left -= n;
    if (this.left > 0) return { messages: [] };
    const m = this.dest;
    this.dest = undefined;
    this.have = 0;
    this.left = -1;
    return { messages: [m] };
  }

  /**
   * `transient`: the chunk's memory is reused after this call (a connection's read buffer), so a
   * message lying wholly inside it is copied out instead of returned as a view.
   */
  push(chunk: Buffer, transient = false): FramePush {
    const messages: Buffer[] = [];
    if (this.failed) return { messages, error: { kind: 'failed', message: `stream already failed: ${this.failed.message}` } };
    let at = 0;
    while (at < chunk.length) {
      if (this.left < 0) {
        let h: number;
        if (this.headerHave === 0 && chunk.length - at >= HEADER) {
          h = chunk.readUInt32BE(at);
          at += HEADER;
        } else {
          const take = Math.min(HEADER - this.headerHave, chunk.length - at);
          chunk.copy(this.header, this.headerHave, at, at + take);
          this.headerHave += take;
          at += take;
          if (this.headerHave < HEADER) break;
          this.headerHave = 0;
          h = this.header.readUInt32BE(0);
        }
        const error = this.check(h);
        if (error) {
          this.failed = error;
          this.dest = undefined;
          this.pieces = [];
          this.have = 0;
          return { messages, error };
        }
        this.left = h & MAX_FRAME_LENGTH;
        continue;
      }
      const take = Math.min(this.left, chunk.length - at);
      if (this.dest === undefined && this.have === 0 && take === this.left) {
        // A whole message inside this chunk (every small request): its own copy, or a view of a
        // chunk that is not reused — no pieces array and concat per message.
        let m: Buffer;
        if (transient) {
          m = Buffer.allocUnsafe(take);
          chunk.copy(m, 0, at, at + take);
        } else m = chunk.subarray(at, at + take);
        messages.push(m);
        at += take;
        this.left = -1;
        continue;
      }
      if (this.dest === undefined && this.have === 0 && take < this.left) this.dest = this.alloc(this.left);
      if (this.dest !== undefined) chunk.copy(this.dest, this.have, at, at + take);
      else this.pieces.push(chunk.subarray(at, at + take));
      this.have += take;
      this.left -= take;
      at += take;
      if (this.left === 0) {
        const p = this.pieces;
        messages.push(this.dest ?? (p.length === 1 && !transient ? p[0]! : Buffer.concat(p, this.have)));
        this.dest = undefined;
        this.pieces = [];
        this.have = 0;
        this.left = -1;
      }
    }
    return { messages };
  }

  private check(h: number): FrameError | undefined {
    if (h >>> 24 !== 0) return { kind: 'bad-header', message: `Direct TCP header first byte ${h >>> 24}, expected 0` };
    const len = h & MAX_FRAME_LENGTH;
    if (len === 0) return { kind: 'empty', message: 'empty message' };
    if (len > this.maxMessageBytes) return { kind: 'too-large', message: `message of ${len} bytes, limit ${this.maxMessageBytes}` };
    return undefined;
  }
}
