/**
 * XDR (RFC 4506) over Buffer, hand-written: a bounded reader and a chunked writer.
 *
 * Reader: every length read from the wire is checked against its declared maximum *and* against
 * the bytes left before anything is allocated or sliced, so decoding a record never allocates more
 * than a small multiple of its length whatever it claims ("every wire decoder is bounded and
 * total"). Every failure is an XdrError; no RangeError from Buffer.readUInt32BE ever escapes,
 * because every read checks the remaining length first. Opaque data is returned as a subarray of
 * the input (no copy): a WRITE payload is the record's own bytes.
 *
 * Writer: appends to a list of chunks; small values go into a growing scratch chunk, large caller
 * buffers (READ data) are spliced in by reference (`opaqueRef`), so a READ reply is written with
 * one writev and its data never copied. A position can be reserved and patched later (counts not
 * known in advance, the record mark).
 */
import { isUtf8 } from 'node:buffer';

export type XdrErrorKind = 'short' | 'too-long' | 'bad-value' | 'bad-utf8';

/** The codec's one error type: what went wrong and where. */
export class XdrError extends Error {
  readonly kind: XdrErrorKind;
  readonly offset: number;
  constructor(kind: XdrErrorKind, message: string, offset: number) {
    super(`XDR ${kind} at ${offset}: ${message}`);
    this.name = 'XdrError';
    this.kind = kind;
    this.offset = offset;
  }
}

export function isXdrError(e: unknown): e is XdrError {
  return e instanceof XdrError;
}

const pad4 = (n: number): number => (4 - (n & 3)) & 3;
const U32_LIMIT = 0x1_0000_0000;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER) - 1n;

export class XdrReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new XdrError('short', `${what}: need ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  u32(): number {
    this.need(4, 'u32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): number {
    this.need(4, 'i32');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8, 'u64');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  i64(): bigint {
    this.need(8, 'i64');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** XDR bool is an enum of 0 or 1; anything else is not a bool. */
  bool(): boolean {
    const at = this.pos;
    const v = this.u32();
    if (v > 1) throw new XdrError('bad-value', `bool ${v}`, at);
    return v === 1;
  }

  /** An enum (or a union discriminant) limited to the values the caller lists. */
  enumOf<T extends number>(allowed: ReadonlySet<number>, what: string): T {
    const at = this.pos;
    const v = this.u32();
    if (!allowed.has(v)) throw new XdrError('bad-value', `${what} ${v}`, at);
    return v as T;
  }

  /** Fixed-length opaque: a subarray of the input, padding skipped. */
  opaqueFixed(n: number): Buffer {
    const padded = n + pad4(n);
    this.need(padded, 'opaque[fixed]');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += padded;
    return v;
  }

  /** Variable-length opaque<max>: a subarray of the input (zero copy). */
  opaque(max: number, what = 'opaque'): Buffer {
    const at = this.pos;
    const n = this.u32();
    if (n > max) throw new XdrError('too-long', `${what} of ${n} bytes, limit ${max}`, at);
    const padded = n + pad4(n);
    if (padded > this.end - this.pos) throw new XdrError('short', `${what} of ${n} bytes, ${this.end - this.pos} left`, at);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += padded;
    return v;
  }

  /** string<max> holding UTF-8 (NFSv4 utf8str_*): invalid UTF-8 is an error of kind 'bad-utf8'. */
  utf8(max: number, what = 'string'): string {
    const at = this.pos;
    const b = this.opaque(max, what);
    if (!isUtf8(b)) throw new XdrError('bad-utf8', `${what} is not UTF-8`, at);
    return b.toString('utf8');
  }

  /** string<max> with no encoding promised (RPC machine names): bytes as latin1, never an error. */
  ascii(max: number, what = 'string'): string {
    return this.opaque(max, what).toString('latin1');
  }

  /**
   * An array's element count, bounded by `max` and by the bytes left: every element takes at least
   * `minElementBytes` on the wire, so a count the record cannot hold is refused before any array
   * of that size is allocated.
   */
  count(max: number, minElementBytes: number, what = 'array'): number {
    const at = this.pos;
    const n = this.u32();
    if (n > max) throw new XdrError('too-long', `${what} of ${n} elements, limit ${max}`, at);
    if (n * minElementBytes > this.end - this.pos) {
      throw new XdrError('short', `${what} of ${n} elements cannot fit in ${this.end - this.pos} bytes`, at);
    }
    return n;
  }

  array<T>(max: number, minElementBytes: number, item: (r: XdrReader) => T, what = 'array'): T[] {
    const n = this.count(max, Math.max(1, minElementBytes), what);
    const out: T[] = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }

  u32Array(max: number, what = 'array'): number[] {
    const n = this.count(max, 4, what);
    const out: number[] = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      out[i] = this.buf.readUInt32BE(this.pos);
      this.pos += 4;
    }
    return out;
  }

  /** Optional data (`T *x` in XDR): a bool then the value. */
  optional<T>(item: (r: XdrReader) => T): T | undefined {
    return this.bool() ? item(this) : undefined;
  }

  /** Asserts the whole input was consumed (argument bodies with nothing after them). */
  done(what: string): void {
    if (this.pos !== this.end) throw new XdrError('too-long', `${this.end - this.pos} bytes after ${what}`, this.pos);
  }
}

/** Chunks smaller than this are copied into the scratch buffer; larger ones are referenced. */
const REF_THRESHOLD = 1024;
/** Under half of Buffer.poolSize (8 KiB): allocUnsafe slices the shared pool instead of allocating. */
const SCRATCH = 2048;
const ZERO = Buffer.alloc(4);
/** Strings up to this many UTF-16 units are tried as ASCII first (XdrWriter.string). */
const SHORT_STRING = 256;

/** A reserved position to patch later. */
export interface XdrMark {
  readonly chunk: Buffer;
  readonly offset: number;
}

export class XdrWriter {
  private readonly chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private flushedBytes = 0;

  constructor(initial = SCRATCH) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.flushedBytes + this.pos;
  }

  private room(n: number): void {
    if (this.cur.length - this.pos >= n) return;
    this.seal();
    this.cur = Buffer.allocUnsafe(Math.max(SCRATCH, n));
    this.pos = 0;
  }

  /** Closes the scratch chunk (its written part joins the list); the next write starts a new one. */
  private seal(): void {
    if (this.pos > 0) {
      this.chunks.push(this.cur.subarray(0, this.pos));
      this.flushedBytes += this.pos;
      this.cur = this.cur.subarray(this.pos);
      this.pos = 0;
    }
  }

  u32(v: number): this {
    // Byte stores instead of writeUInt32BE (no range checks; in a micro-benchmark as fast or
    // faster): a Uint8Array store keeps the low 8 bits, so this writes `v >>> 0` big-endian.
    if (this.cur.length - this.pos < 4) this.room(4);
    const b = this.cur;
    const p = this.pos;
    b[p] = v >>> 24;
    b[p + 1] = v >>> 16;
    b[p + 2] = v >>> 8;
    b[p + 3] = v;
    this.pos = p + 4;
    return this;
  }

  i32(v: number): this {
    this.room(4);
    this.cur.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    // Ids, sizes, cookies and times fit in 2^53: two u32 from a Number cost about half of
    // writeBigUInt64BE's BigInt work (READDIR writes ~11 per entry).
    if (v >= 0n && v <= MAX_SAFE_BIG) return this.u64n(Number(v));
    this.room(8);
    this.cur.writeBigUInt64BE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  i64(v: bigint): this {
    if (v >= 0n && v <= MAX_SAFE_BIG) return this.u64n(Number(v));
    this.room(8);
    this.cur.writeBigInt64BE(BigInt.asIntN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  /** A u64 from a JS number (sizes, offsets within 2^53). */
  u64n(v: number): this {
    if (!(v >= 0 && v < Number.MAX_SAFE_INTEGER)) return this.u64(BigInt(Math.max(0, Math.trunc(v || 0))));
    this.u32(Math.floor(v / U32_LIMIT));
    return this.u32(v % U32_LIMIT);
  }

  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }

  private bytes(b: Uint8Array): void {
    if (b.length >= REF_THRESHOLD) {
      this.seal();
      this.chunks.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length));
      this.flushedBytes += b.length;
      return;
    }
    this.room(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
  }

  private padding(n: number): void {
    const p = pad4(n);
    if (p) {
      // Zeros stored one by one: a ZERO.subarray() per padded string cost more than the string's bytes.
      this.room(p);
      const b = this.cur;
      const at = this.pos;
      for (let i = 0; i < p; i++) b[at + i] = 0;
      this.pos = at + p;
    }
  }

  opaqueFixed(b: Uint8Array): this {
    this.bytes(b);
    this.padding(b.length);
    return this;
  }

  /** opaque<>: length, bytes (large ones by reference: READ data is never copied), padding. */
  opaque(b: Uint8Array): this {
    this.u32(b.length);
    this.bytes(b);
    this.padding(b.length);
    return this;
  }

  string(s: string): this {
    // Short ASCII (names, numeric owners): written byte by byte, no UTF-8 length pass and no
    // native call; anything else goes the general way.
    const len = s.length;
    if (len <= SHORT_STRING) {
      this.room(len + 8);
      const b = this.cur;
      const p = this.pos + 4;
      let i = 0;
      for (; i < len; i++) {
        const ch = s.charCodeAt(i);
        if (ch >= 0x80) break;
        b[p + i] = ch;
      }
      if (i === len) {
        this.u32(len);
        this.pos += len;
        this.padding(len);
        return this;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.u32(n);
    if (n >= REF_THRESHOLD) {
      this.bytes(Buffer.from(s, 'utf8'));
    } else {
      this.room(n);
      this.cur.write(s, this.pos, 'utf8');
      this.pos += n;
    }
    this.padding(n);
    return this;
  }

  u32Array(v: readonly number[]): this {
    this.u32(v.length);
    for (const x of v) this.u32(x);
    return this;
  }

  /** Reserves four bytes to patch later with `patchU32`. */
  reserveU32(): XdrMark {
    this.room(4);
    const m = { chunk: this.cur, offset: this.pos };
    this.cur.writeUInt32BE(0, this.pos);
    this.pos += 4;
    return m;
  }

  patchU32(m: XdrMark, v: number): void {
    m.chunk.writeUInt32BE(v >>> 0, m.offset);
  }

  /**
   * The bytes written between two earlier `length` values: a view when they lie in the current
   * scratch chunk (no copy: the writer never writes over bytes it wrote, so the view stays valid),
   * else a copy. READDIR packs its entries this way and keeps only the ones that fit.
   */
  slice(start: number, end: number): Buffer {
    const from = start - this.flushedBytes;
    if (from >= 0) return this.cur.subarray(from, end - this.flushedBytes);
    const out = Buffer.allocUnsafe(end - start);
    let at = 0;
    let base = 0;
    for (const c of [...this.chunks, this.cur.subarray(0, this.pos)]) {
      const lo = Math.max(start, base);
      const hi = Math.min(end, base + c.length);
      if (hi > lo) {
        c.copy(out, at, lo - base, hi - base);
        at += hi - lo;
      }
      base += c.length;
      if (base >= end) break;
    }
    return out;
  }

  /** The written bytes as a list of chunks (some by reference to caller buffers), for writev. */
  chunksOut(): Buffer[] {
    this.seal();
    return this.chunks;
  }

  /** The written bytes as one Buffer (copies; for tests and small messages). */
  toBuffer(): Buffer {
    const c = this.chunksOut();
    return c.length === 1 && c[0] ? c[0] : Buffer.concat(c);
  }
}
