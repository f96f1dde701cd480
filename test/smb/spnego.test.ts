/** SPNEGO and its DER reader: a NegTokenInit captured from smbclient 4.17, round trips, bounds. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { NegState, OID, decodeSpnego, encodeMechTypes, encodeNegTokenInit, encodeNegTokenInit2, encodeNegTokenResp } from '../../protocols/smb/spnego.ts';
import { decodeNegotiateMessage } from '../../protocols/smb/ntlm.ts';
import { oidToBytes, oidToString, readTlv } from '../../protocols/smb/der.ts';
import { SmbDecodeError, tryDecode } from '../../protocols/smb/wire.ts';
import { hex } from './helpers.ts';

const CAPTURED = hex(readFileSync(new URL('./fixtures/smbclient-4.17-negtokeninit.hex', import.meta.url), 'utf8'));

describe('the NegTokenInit smbclient 4.17 sent (captured by smbclient.test.ts)', () => {
  it('offers NTLMSSP with an optimistic NTLMSSP NEGOTIATE', () => {
    const t = decodeSpnego(CAPTURED);
    expect(t.kind).toBe('init');
    if (t.kind !== 'init') return;
    expect(t.mechTypes).toEqual([OID.NTLMSSP]);
    expect(t.mechTypesDer).toEqual(encodeMechTypes([OID.NTLMSSP]));
    expect(decodeNegotiateMessage(t.mechToken!).flags).toBeGreaterThan(0);
    // Re-encoding what was decoded gives the client's bytes back.
    expect(encodeNegTokenInit(t.mechTypes, t.mechToken)).toEqual(CAPTURED);
  });

  it('every truncation and every single-byte change decodes or is an SmbDecodeError', () => {
    for (let n = 0; n < CAPTURED.length; n++) {
      const r = tryDecode(() => decodeSpnego(CAPTURED.subarray(0, n)));
      expect(r.ok).toBe(false);
    }
    for (let i = 0; i < CAPTURED.length; i++) {
      for (const v of [0x00, 0x7f, 0x80, 0x84, 0xff]) {
        const m = Buffer.from(CAPTURED);
        m[i] = v;
        tryDecode(() => decodeSpnego(m));
      }
    }
  });
});

describe('round trips', () => {
  it('NegTokenInit2 (the NEGOTIATE response hint): negHints is not taken for a mechListMIC', () => {
    const t = decodeSpnego(encodeNegTokenInit2([OID.NTLMSSP, OID.KERBEROS]));
    expect(t).toMatchObject({ kind: 'init', mechTypes: [OID.NTLMSSP, OID.KERBEROS] });
    expect(t.kind === 'init' && t.mechListMIC).toBeFalsy();
  });

  it('NegTokenInit with a MIC; NegTokenResp in every shape', () => {
    const init = decodeSpnego(encodeNegTokenInit([OID.MS_KERBEROS, OID.NTLMSSP], hex('4e544c4d53535000'), hex('0102')));
    expect(init).toMatchObject({ kind: 'init', mechTypes: [OID.MS_KERBEROS, OID.NTLMSSP], mechListMIC: hex('0102') });
    for (const r of [
      { negState: NegState.ACCEPT_INCOMPLETE, supportedMech: OID.NTLMSSP, responseToken: Buffer.alloc(300, 7) },
      { negState: NegState.ACCEPT_COMPLETED, mechListMIC: hex('01000000aabbccddeeff001100000000') },
      { responseToken: hex('aa'), mechListMIC: hex('bb') },
      { negState: NegState.REJECT },
    ]) {
      expect(decodeSpnego(encodeNegTokenResp(r))).toEqual({ kind: 'resp', ...r });
    }
  });

  it('a raw NTLMSSP token passes through', () => {
    expect(decodeSpnego(hex('4e544c4d5353500001000000'))).toMatchObject({ kind: 'raw-ntlmssp' });
  });

  it('OIDs round-trip, including multi-byte arcs', () => {
    for (const o of Object.values(OID)) expect(oidToString(oidToBytes(o))).toBe(o);
  });
});

describe('DER bounds', () => {
  const bad = (b: Buffer): void => {
    const r = tryDecode(() => decodeSpnego(b));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toBeInstanceOf(SmbDecodeError);
  };
  it('indefinite length, 5-byte lengths, high tag numbers, lengths past the end, trailing bytes', () => {
    bad(hex('a180'));
    bad(hex('a1850000000001 00'));
    bad(hex('bf1f00'));
    bad(hex('a184ffffffff'));
    bad(Buffer.concat([encodeNegTokenResp({ negState: 0 }), hex('00')]));
  });
  it('fields out of order or repeated, a bad negState, an OID ending mid-arc, too many mechs', () => {
    bad(hex('a10a3008a1030a0101a0030a0101'));
    bad(hex('a10a3008a0030a0101a0030a0101'));
    bad(hex('a1073005a0030a0109'));
    bad(hex('a00d300ba009300706032b8680'));
    const many = encodeNegTokenInit(new Array(17).fill(OID.NTLMSSP));
    bad(many);
  });
  it('readTlv never reads past its buffer', () => {
    expect(() => readTlv(hex('30'))).toThrow(SmbDecodeError);
    expect(() => readTlv(hex('3002 00'))).toThrow(SmbDecodeError);
    expect(readTlv(hex('300100')).next).toBe(3);
  });
});
