/**
 * SPNEGO (RFC 4178, with Microsoft's NegTokenInit2, MS-SPNG 2.2.1): the GSS token inside
 * SESSION_SETUP.
 *
 * A client's first token is an InitialContextToken: [APPLICATION 0] { OID 1.3.6.1.5.5.2,
 * NegotiationToken }; later tokens are a bare NegotiationToken. The server offers NTLMSSP only
 * (Kerberos needs a KDC and keytab, out of scope), so when the client's first choice is another
 * mechanism without an optimistic token for NTLMSSP, the server answers with accept-incomplete
 * and supportedMech NTLMSSP, and the client sends NTLMSSP next (RFC 4178 §5 d).
 *
 * mechListMIC (RFC 4178 §5 e): computed by the mechanism over the DER bytes of the client's
 * MechTypeList exactly as received, so the decoder keeps those bytes (`mechTypesDer`).
 * A raw NTLMSSP token (no SPNEGO, "NTLMSSP\0") is also accepted, as Windows and Samba do.
 */
import { SmbDecodeError } from './wire.ts';
import { Tag, children, oidToBytes, oidToString, readOnly, tlv, type Tlv } from './der.ts';

export const OID = {
  SPNEGO: '1.3.6.1.5.5.2',
  NTLMSSP: '1.3.6.1.4.1.311.2.2.10',
  KERBEROS: '1.2.840.113554.1.2.2',
  MS_KERBEROS: '1.2.840.48018.1.2.2',
  NEGOEX: '1.3.6.1.4.1.311.2.2.30',
} as const;

export const NegState = { ACCEPT_COMPLETED: 0, ACCEPT_INCOMPLETE: 1, REJECT: 2, REQUEST_MIC: 3 } as const;

/** Bounds: a token is already bounded by the SESSION_SETUP buffer (64 KiB); a mech list longer than this is refused. */
export const MAX_MECH_TYPES = 16;

export type SpnegoToken =
  | { kind: 'init'; mechTypes: string[]; mechTypesDer: Buffer; mechToken?: Buffer; mechListMIC?: Buffer }
  | { kind: 'resp'; negState?: number; supportedMech?: string; responseToken?: Buffer; mechListMIC?: Buffer }
  | { kind: 'raw-ntlmssp'; token: Buffer };

const NTLMSSP_SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

function field(fields: Tlv[], n: number): Tlv | undefined {
  return fields.find((f) => f.tag === Tag.context(n));
}

function octets(t: Tlv | undefined): Buffer | undefined {
  return t ? readOnly(t.value, Tag.OCTET_STRING).value : undefined;
}

/** Fields of a context-tagged SEQUENCE must be in increasing tag order, each at most once. */
function orderedFields(seq: Tlv, max: number): Tlv[] {
  const fields = children(seq.value, 8);
  let last = -1;
  for (const f of fields) {
    const n = f.tag & 0x1f;
    if ((f.tag & 0xe0) !== 0xa0 || n > max || n <= last) throw new SmbDecodeError('bad-value', `SPNEGO field tag 0x${f.tag.toString(16)}`);
    last = n;
  }
  return fields;
}

function decodeInit(t: Tlv): SpnegoToken {
  const seq = readOnly(t.value, Tag.SEQUENCE);
  const f = orderedFields(seq, 4);
  const mt = field(f, 0);
  if (!mt) throw new SmbDecodeError('bad-value', 'NegTokenInit without mechTypes');
  const list = readOnly(mt.value, Tag.SEQUENCE);
  const oids = children(list.value, MAX_MECH_TYPES);
  if (oids.length === 0) throw new SmbDecodeError('bad-value', 'empty mechTypes');
  const mechTypes = oids.map((o) => {
    if (o.tag !== Tag.OID) throw new SmbDecodeError('bad-value', 'mechTypes entry is not an OID');
    return oidToString(o.value);
  });
  const out: SpnegoToken = { kind: 'init', mechTypes, mechTypesDer: list.raw };
  const token = octets(field(f, 2));
  if (token) out.mechToken = token;
  // [3] is mechListMIC in RFC 4178 and negHints in NegTokenInit2 (a SEQUENCE); [4] is NegTokenInit2's MIC.
  const f3 = field(f, 3);
  const f3v = f3 ? readOnly(f3.value) : undefined;
  const mic = f3v?.tag === Tag.OCTET_STRING ? f3v.value : octets(field(f, 4));
  if (mic) out.mechListMIC = mic;
  return out;
}

function decodeResp(t: Tlv): SpnegoToken {
  const seq = readOnly(t.value, Tag.SEQUENCE);
  const f = orderedFields(seq, 3);
  const out: SpnegoToken = { kind: 'resp' };
  const st = field(f, 0);
  if (st) {
    const e = readOnly(st.value, Tag.ENUMERATED);
    if (e.value.length !== 1 || e.value[0]! > 3) throw new SmbDecodeError('bad-value', 'negState');
    out.negState = e.value[0]!;
  }
  const sm = field(f, 1);
  if (sm) out.supportedMech = oidToString(readOnly(sm.value, Tag.OID).value);
  const rt = octets(field(f, 2));
  if (rt) out.responseToken = rt;
  const mic = octets(field(f, 3));
  if (mic) out.mechListMIC = mic;
  return out;
}

/** Decodes a SESSION_SETUP security buffer. Throws only SmbDecodeError. */
export function decodeSpnego(token: Buffer): SpnegoToken {
  if (token.length >= 8 && token.subarray(0, 8).equals(NTLMSSP_SIGNATURE)) return { kind: 'raw-ntlmssp', token };
  const outer = readOnly(token);
  if (outer.tag === Tag.APPLICATION_0) {
    const parts = children(outer.value, 2);
    const oid = parts[0];
    const inner = parts[1];
    if (!oid || oid.tag !== Tag.OID || oidToString(oid.value) !== OID.SPNEGO) throw new SmbDecodeError('bad-value', 'GSS token for another mechanism than SPNEGO');
    if (!inner || inner.tag !== Tag.context(0)) throw new SmbDecodeError('bad-value', 'InitialContextToken without a NegTokenInit');
    return decodeInit(inner);
  }
  if (outer.tag === Tag.context(0)) return decodeInit(outer);
  if (outer.tag === Tag.context(1)) return decodeResp(outer);
  throw new SmbDecodeError('bad-value', `SPNEGO token tag 0x${outer.tag.toString(16)}`);
}

const oid = (o: string): Buffer => tlv(Tag.OID, oidToBytes(o));
const octet = (b: Buffer): Buffer => tlv(Tag.OCTET_STRING, b);

/** The mechTypes SEQUENCE as DER (what mechListMIC covers). */
export function encodeMechTypes(mechs: string[]): Buffer {
  return tlv(Tag.SEQUENCE, ...mechs.map(oid));
}

/**
 * The server's NegTokenInit2 for the NEGOTIATE response's security buffer (MS-SPNG 3.2.5.2):
 * the mechanisms it accepts and the hint name Windows sends.
 */
export function encodeNegTokenInit2(mechs: string[] = [OID.NTLMSSP]): Buffer {
  const hints = tlv(Tag.SEQUENCE, tlv(Tag.context(0), tlv(Tag.GENERAL_STRING, Buffer.from('not_defined_in_RFC4178@please_ignore', 'latin1'))));
  const init = tlv(Tag.SEQUENCE, tlv(Tag.context(0), encodeMechTypes(mechs)), tlv(Tag.context(3), hints));
  return tlv(Tag.APPLICATION_0, oid(OID.SPNEGO), tlv(Tag.context(0), init));
}

/** A client's NegTokenInit (tests, and the shape smbclient sends). */
export function encodeNegTokenInit(mechs: string[], mechToken?: Buffer, mechListMIC?: Buffer): Buffer {
  const parts = [tlv(Tag.context(0), encodeMechTypes(mechs))];
  if (mechToken) parts.push(tlv(Tag.context(2), octet(mechToken)));
  if (mechListMIC) parts.push(tlv(Tag.context(3), octet(mechListMIC)));
  return tlv(Tag.APPLICATION_0, oid(OID.SPNEGO), tlv(Tag.context(0), tlv(Tag.SEQUENCE, ...parts)));
}

export function encodeNegTokenResp(r: { negState?: number; supportedMech?: string; responseToken?: Buffer; mechListMIC?: Buffer }): Buffer {
  const parts: Buffer[] = [];
  if (r.negState !== undefined) parts.push(tlv(Tag.context(0), tlv(Tag.ENUMERATED, Buffer.from([r.negState]))));
  if (r.supportedMech) parts.push(tlv(Tag.context(1), oid(r.supportedMech)));
  if (r.responseToken) parts.push(tlv(Tag.context(2), octet(r.responseToken)));
  if (r.mechListMIC) parts.push(tlv(Tag.context(3), octet(r.mechListMIC)));
  return tlv(Tag.context(1), tlv(Tag.SEQUENCE, ...parts));
}
