/**
 * Shared by the command codecs: every decoder takes one compound element (the 64-byte header and
 * its body, as splitCompound returns it), because offsets inside a body count from the header.
 * Every encoder appends a body to a writer that already holds the header.
 */
import { HEADER_BYTES } from '../header.ts';
import { SmbDecodeError, WireReader } from '../wire.ts';

export function bodyReader(element: Buffer, what: string): WireReader {
  if (element.length < HEADER_BYTES) throw new SmbDecodeError('short', `${what}: no SMB2 header`);
  const r = new WireReader(element);
  r.pos = HEADER_BYTES;
  return r;
}

/** Bytes from an offset from the header to the element's end, when a buffer's start is all that matters. */
export function checkBound(value: number, max: number, what: string, at: number): number {
  if (value > max) throw new SmbDecodeError('too-long', `${what} ${value}, limit ${max}`, at);
  return value;
}
