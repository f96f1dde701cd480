/**
 * The commands whose request and response are the 4-byte body {StructureSize 4, Reserved}:
 * LOGOFF (2.2.7/8), TREE_DISCONNECT (2.2.11/12), ECHO (2.2.28/29), CANCEL (2.2.30, no response),
 * and the FLUSH and LOCK responses (2.2.18, 2.2.27). SET_INFO's response is {StructureSize 2}.
 */
import { WireWriter } from '../wire.ts';
import { bodyReader } from './body.ts';

export function decodeEmpty(element: Buffer, what: string): void {
  const r = bodyReader(element, what);
  r.structure(4, what);
}

export function encodeEmpty(w: WireWriter): void {
  w.u16(4).u16(0);
}

export function decodeSetInfoResponse(element: Buffer): void {
  bodyReader(element, 'SET_INFO response').structure(2, 'SET_INFO response');
}

export function encodeSetInfoResponse(w: WireWriter): void {
  w.u16(2);
}
