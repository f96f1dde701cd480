/**
 * The SMB2 codec's bounded little-endian reader and writer, and its one error type.
 *
 * Every read checks the bytes left before touching the buffer, so no RangeError from
 * Buffer.readUInt32LE can escape: a short or lying message is an SmbDecodeError. Offsets carried
 * in messages (security buffers, names, create contexts, negotiate contexts) are validated
 * against the message they point into by `slice`, before any subarray is taken; nothing is
 * allocated from a length the peer wrote (buffers are views of the input), so decoding a message
 * holds no more than the message itself.
 */

export type SmbDecodeErrorKind = 'short' | 'bad-offset' | 'bad-value' | 'too-long';

/** The wire layer's one error type. Codec entry points throw nothing else. */
export class SmbDecodeError extends Error {
  readonly kind: SmbDecodeErrorKind;
  readonly offset: number;
  constructor(kind: SmbDecodeErrorKind, message: string, offset = 0) {
    super(`SMB2 ${kind} at ${offset}: ${message}`);
    this.name = 'SmbDecodeError';
    this.kind = kind;
    this.offset = offset;
  }
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: SmbDecodeError };

/**
 * Runs a throwing decoder and returns its value or its SmbDecodeError as a value. Anything else
 * thrown is a bug in the codec and is rethrown (the fuzz tests look for exactly that).
 */
export function tryDecode<T>(fn: () => T): Decoded<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof SmbDecodeError) return { ok: false, error: e };
    throw e;
  }
}

export class WireReader {
  readonly buf: Buffer;
  pos: number;
  readonly start: number;
  readonly end: number;

  /** Reads buf[start, end); `start` is also the origin of `slice` offsets unless one is given. */
  constructor(buf: Buffer, start = 0, end = buf.length) {
    if (start < 0 || end > buf.length || start > end) throw new SmbDecodeError('bad-offset', `reader window ${start}..${end} of ${buf.length}`);
    this.buf = buf;
    this.start = start;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new SmbDecodeError('short', `${what}: need ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  u8(): number {
    this.need(1, 'u8');
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2, 'u16');
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'u32');
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8, 'u64');
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    this.need(n, 'skip');
    this.pos += n;
  }

  /**
   * A field placed by an (offset, length) pair, offset counted from `origin` (the SMB2 header for
   * most commands). A zero length is an empty buffer whatever the offset (clients send offset 0
   * or a past-the-end offset with it). The field must lie inside [origin, end).
   */
  slice(offset: number, length: number, what: string, origin = this.start): Buffer {
    if (length === 0) return this.buf.subarray(0, 0);
    const at = origin + offset;
    if (offset < 0 || at < origin || at + length > this.end) {
      throw new SmbDecodeError('bad-offset', `${what}: ${length} bytes at offset ${offset} outside the message (${this.end - origin} bytes)`, this.pos);
    }
    return this.buf.subarray(at, at + length);
  }

  /** Checks a command body's StructureSize (the fixed part; an odd size counts one buffer byte that may be absent). */
  structure(expected: number, what: string): void {
    const at = this.pos;
    const v = this.u16();
    if (v !== expected) throw new SmbDecodeError('bad-value', `${what} StructureSize ${v}, expected ${expected}`, at);
    const fixed = (expected & ~1) - 2;
    this.need(fixed, `${what} fixed part`);
  }
}

/** UTF-16LE text from a wire field; an odd length is malformed. */
export function utf16(b: Buffer, what: string): string {
  if (b.length & 1) throw new SmbDecodeError('bad-value', `${what}: odd UTF-16 length ${b.length}`);
  return b.toString('utf16le');
}

/**
 * A growing little-endian writer for responses (and, in tests, requests). Offsets into the
 * message are absolute positions from the writer's start, which callers keep at the SMB2 header.
 */
export class WireWriter {
  private buf: Buffer;
  len = 0;

  constructor(initial = 256) {
    // A small writer (a response's head and body) takes its zeroed bytes from Node's 8 KiB pool
    // rather than an ArrayBuffer of its own (one per response before: allocation, and GC work).
    this.buf = initial <= 4096 ? Buffer.allocUnsafe(initial).fill(0) : Buffer.alloc(initial);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.buf.writeUInt16LE(v & 0xffff, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  u64(v: bigint): this {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.len);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  zeros(n: number): this {
    this.room(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
    return this;
  }

  /** Pads with zeros to a multiple of `n` bytes from the writer's start. */
  align(n: number): this {
    return this.zeros((n - (this.len % n)) % n);
  }

  patchU16(at: number, v: number): void {
    this.buf.writeUInt16LE(v & 0xffff, at);
  }

  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v >>> 0, at);
  }

  /** The bytes written (a copy-free view; the writer must not be used afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

export const GUID_BYTES = 16;
export const FILE_ID_BYTES = 16;

/** An SMB2_FILEID: persistent and volatile halves. */
export interface FileId {
  persistent: bigint;
  volatile: bigint;
}

export function readFileId(r: WireReader): FileId {
  return { persistent: r.u64(), volatile: r.u64() };
}

export function writeFileId(w: WireWriter, id: FileId): void {
  w.u64(id.persistent).u64(id.volatile);
}

/** The FileId a related compound request sends to mean "the one the previous request made" (MS-SMB2 3.3.5.2.7.2). */
export const RELATED_FILE_ID: FileId = { persistent: 0xffff_ffff_ffff_ffffn, volatile: 0xffff_ffff_ffff_ffffn };

export function isRelatedFileId(id: FileId): boolean {
  return id.persistent === RELATED_FILE_ID.persistent && id.volatile === RELATED_FILE_ID.volatile;
}
