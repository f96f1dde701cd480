/**
 * A bounded DER reader and a minimal writer, for SPNEGO (RFC 4178) only.
 *
 * Hand-written rather than taken from a library: SPNEGO needs SEQUENCE, OID, OCTET STRING,
 * ENUMERATED, BIT STRING, GeneralString and context tags, ~150 lines; a general ASN.1 library
 * would add a dependency whose own bounds we would have to audit. Bounds: single-byte tags
 * only (SPNEGO uses no high tag numbers), definite lengths of at most 4 length bytes and never
 * past the enclosing element (checked before any slice), nesting depth limited by the callers'
 * fixed structure (no recursion on input). Every failure is an SmbDecodeError.
 */
import { SmbDecodeError } from './wire.ts';

export interface Tlv {
  tag: number;
  /** The value bytes (a view of the input). */
  value: Buffer;
  /** The whole element, tag and length included (for mechListMIC, computed over the DER bytes). */
  raw: Buffer;
}

export const Tag = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  ENUMERATED: 0x0a,
  GENERAL_STRING: 0x1b,
  SEQUENCE: 0x30,
  APPLICATION_0: 0x60,
  context: (n: number): number => 0xa0 | n,
} as const;

/** Reads one TLV at `at` in `buf`; returns it and the position after it. */
export function readTlv(buf: Buffer, at = 0): { tlv: Tlv; next: number } {
  if (at + 2 > buf.length) throw new SmbDecodeError('short', 'DER element header', at);
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) throw new SmbDecodeError('bad-value', `DER high tag number form (0x${tag.toString(16)})`, at);
  let len = buf[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // 0x80 is BER's indefinite length, not DER; more than 4 length bytes cannot fit a message.
    if (n === 0 || n > 4) throw new SmbDecodeError('bad-value', `DER length of ${n} bytes`, at + 1);
    if (p + n > buf.length) throw new SmbDecodeError('short', 'DER length', at + 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (len > buf.length - p) throw new SmbDecodeError('short', `DER element of ${len} bytes, ${buf.length - p} left`, at);
  return { tlv: { tag, value: buf.subarray(p, p + len), raw: buf.subarray(at, p + len) }, next: p + len };
}

/** Reads exactly one element filling `buf` (trailing bytes are malformed). */
export function readOnly(buf: Buffer, expectedTag?: number): Tlv {
  const { tlv, next } = readTlv(buf);
  if (next !== buf.length) throw new SmbDecodeError('bad-value', `${buf.length - next} bytes after a DER element`, next);
  if (expectedTag !== undefined && tlv.tag !== expectedTag) throw new SmbDecodeError('bad-value', `DER tag 0x${tlv.tag.toString(16)}, expected 0x${expectedTag.toString(16)}`);
  return tlv;
}

/** The elements inside a constructed value, at most `max` of them. */
export function children(value: Buffer, max = 32): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  while (at < value.length) {
    if (out.length >= max) throw new SmbDecodeError('too-long', `more than ${max} DER elements`, at);
    const { tlv, next } = readTlv(value, at);
    out.push(tlv);
    at = next;
  }
  return out;
}

/** An OBJECT IDENTIFIER value as dotted text; arcs limited to 32 bits and 32 arcs. */
export function oidToString(value: Buffer): string {
  if (value.length === 0 || value.length > 64) throw new SmbDecodeError('bad-value', `OID of ${value.length} bytes`);
  const arcs: number[] = [];
  let v = 0;
  let bytes = 0;
  for (const b of value) {
    if (bytes === 0 && b === 0x80) throw new SmbDecodeError('bad-value', 'OID arc with a leading 0x80');
    v = v * 128 + (b & 0x7f);
    bytes++;
    if (v > 0xffff_ffff) throw new SmbDecodeError('bad-value', 'OID arc over 32 bits');
    if (!(b & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
      bytes = 0;
    }
  }
  if (bytes !== 0) throw new SmbDecodeError('bad-value', 'OID ends inside an arc');
  return arcs.join('.');
}

export function oidToBytes(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [];
  const push = (n: number): void => {
    const tmp = [n & 0x7f];
    for (n = Math.floor(n / 128); n > 0; n = Math.floor(n / 128)) tmp.unshift((n & 0x7f) | 0x80);
    out.push(...tmp);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return Buffer.from(out);
}

/** One DER element (definite length, minimal length bytes). */
export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts);
  const n = value.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else if (n < 0x100) len = [0x81, n];
  else if (n < 0x10000) len = [0x82, n >> 8, n & 0xff];
  else len = [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), value]);
}
