/** The ERROR response (MS-SMB2 2.2.2): StructureSize 9, ErrorContextCount, ByteCount, ErrorData. */
import { WireWriter } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

export const MAX_ERROR_DATA = 64 * 1024;

export interface ErrorResponse {
  /** 3.1.1 error contexts count (0 for plain errors). */
  errorContextCount: number;
  /** e.g. the SYMBOLIC_LINK_ERROR_RESPONSE or the required size for STATUS_BUFFER_TOO_SMALL. */
  errorData: Buffer;
}

export function encodeErrorResponse(w: WireWriter, p: ErrorResponse = { errorContextCount: 0, errorData: Buffer.alloc(0) }): void {
  w.u16(9).u8(p.errorContextCount).u8(0).u32(p.errorData.length);
  // ByteCount 0 still carries one byte (the StructureSize counts it; Windows clients expect 9 bytes).
  if (p.errorData.length === 0) w.u8(0);
  else w.bytes(p.errorData);
}

export function decodeErrorResponse(element: Buffer): ErrorResponse {
  const r = bodyReader(element, 'ERROR response');
  r.structure(9, 'ERROR response');
  const errorContextCount = r.u8();
  r.u8();
  const n = checkBound(r.u32(), MAX_ERROR_DATA, 'ErrorData', r.pos - 4);
  return { errorContextCount, errorData: n === 0 ? Buffer.alloc(0) : r.bytes(n, 'ErrorData') };
}
