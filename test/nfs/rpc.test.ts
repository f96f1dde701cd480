/**
 * ONC RPC messages (protocols/nfs/rpc.ts) against byte vectors built by hand from RFC 5531's
 * XDR: a NULL call, an AUTH_SYS credential, each reply arm; and the decoder's totality.
 */
import { describe, expect, it } from 'vitest';
import {
  AUTH_STAT,
  decodeCall,
  decodeReply,
  encodeAuthSys,
  encodeReplyHeader,
  parseAuthSys,
  type RpcReply,
} from '../../protocols/nfs/rpc.ts';
import { XdrError, XdrWriter } from '../../protocols/nfs/xdr.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// xid, CALL, rpcvers 2, prog 100003, vers 4, proc 0 (NULL), cred AUTH_NONE, verf AUTH_NONE.
const NULL_CALL = hex('01020304 00000000 00000002 000186a3 00000004 00000000 00000000 00000000 00000000 00000000');
// authsys_parms: stamp, machinename "host", uid 1000, gid 100, gids [100, 27].
const AUTH_SYS_BODY = hex('12345678 00000004 686f7374 000003e8 00000064 00000002 00000064 0000001b');

function withCred(flavor: number, body: Buffer, verf = hex('00000000 00000000')): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const fl = Buffer.alloc(4);
  fl.writeUInt32BE(flavor);
  return Buffer.concat([NULL_CALL.subarray(0, 24), fl, len, body, Buffer.alloc((4 - (body.length % 4)) % 4), verf]);
}

describe('decodeCall', () => {
  it('decodes the NULL call vector', () => {
    const d = decodeCall(NULL_CALL);
    expect(d.kind).toBe('call');
    if (d.kind !== 'call') return;
    expect(d.call).toMatchObject({ xid: 0x01020304, prog: 100003, vers: 4, proc: 0, cred: { flavor: 0 } });
    expect(d.call.args.length).toBe(0);
  });

  it('decodes an AUTH_SYS credential (RFC 5531 appendix A) and round-trips it', () => {
    const sys = parseAuthSys(AUTH_SYS_BODY);
    expect(sys).toEqual({ stamp: 0x12345678, machineName: 'host', uid: 1000, gid: 100, gids: [100, 27] });
    expect(encodeAuthSys(sys).equals(AUTH_SYS_BODY)).toBe(true);
    const d = decodeCall(Buffer.concat([withCred(1, AUTH_SYS_BODY), hex('cafebabe')]));
    expect(d.kind === 'call' && d.call.cred).toEqual({ flavor: 1, sys });
    expect(d.kind === 'call' && d.call.args.toString('hex')).toBe('cafebabe');
  });

  it('answers a wrong RPC version with RPC_MISMATCH 2..2 whatever follows', () => {
    const rec = Buffer.from(NULL_CALL);
    rec.writeUInt32BE(3, 8);
    expect(decodeCall(rec.subarray(0, 12))).toMatchObject({ kind: 'reject', xid: 0x01020304, reply: { kind: 'rpc_mismatch', low: 2, high: 2 } });
  });

  it('refuses bad credentials with AUTH_ERROR and the right auth_stat', () => {
    const badcred = (rec: Buffer) => expect(decodeCall(rec)).toMatchObject({ kind: 'reject', reply: { kind: 'auth_error', stat: AUTH_STAT.BADCRED } });
    // RPCSEC_GSS (6), AUTH_DH (3), an unknown flavor.
    badcred(withCred(6, hex('00000001 00000000 00000000 00000000')));
    badcred(withCred(3, hex('00000000')));
    badcred(withCred(0x7777, Buffer.alloc(0)));
    // A body over 400 bytes (RFC 5531 §8.2).
    badcred(withCred(1, Buffer.alloc(404)));
    // AUTH_SYS: machinename over 255, 17 gids, trailing bytes, truncated.
    badcred(withCred(1, Buffer.concat([hex('00000000 00000100'), Buffer.alloc(256), hex('00000000 00000000 00000000')])));
    badcred(withCred(1, Buffer.concat([hex('00000000 00000000 00000000 00000000 00000011'), Buffer.alloc(68)])));
    badcred(withCred(1, Buffer.concat([AUTH_SYS_BODY, hex('00000000')])));
    badcred(withCred(1, AUTH_SYS_BODY.subarray(0, 20)));
    // An AUTH_SYS verifier is not a server's to accept.
    expect(decodeCall(withCred(1, AUTH_SYS_BODY, hex('00000001 00000000')))).toMatchObject({ reply: { kind: 'auth_error', stat: AUTH_STAT.BADVERF } });
  });

  it('drops what cannot be answered and answers a cut header with GARBAGE_ARGS', () => {
    expect(decodeCall(hex('0102')).kind).toBe('drop');
    expect(decodeCall(hex('01020304 00000001 00000000')).kind).toBe('drop'); // a REPLY
    expect(decodeCall(NULL_CALL.subarray(0, 20))).toMatchObject({ kind: 'reject', reply: { kind: 'garbage_args' } });
  });
});

describe('reply encoding', () => {
  const cases: [RpcReply, string][] = [
    [{ kind: 'success' }, '00000000 00000000 00000000 00000000'],
    [{ kind: 'prog_unavail' }, '00000000 00000000 00000000 00000001'],
    [{ kind: 'prog_mismatch', low: 4, high: 4 }, '00000000 00000000 00000000 00000002 00000004 00000004'],
    [{ kind: 'proc_unavail' }, '00000000 00000000 00000000 00000003'],
    [{ kind: 'garbage_args' }, '00000000 00000000 00000000 00000004'],
    [{ kind: 'system_err' }, '00000000 00000000 00000000 00000005'],
    [{ kind: 'rpc_mismatch', low: 2, high: 2 }, '00000001 00000000 00000002 00000002'],
    [{ kind: 'auth_error', stat: AUTH_STAT.TOOWEAK }, '00000001 00000001 00000005'],
  ];
  for (const [reply, body] of cases) {
    it(`${reply.kind}`, () => {
      const w = new XdrWriter();
      encodeReplyHeader(w, 0xabcdef01, reply);
      const buf = w.toBuffer();
      // xid, REPLY, then the arm (accepted replies carry an AUTH_NONE verifier first).
      expect(buf.toString('hex')).toBe(hex('abcdef01 00000001' + body).toString('hex'));
      expect(decodeReply(buf).reply).toEqual(reply);
    });
  }
});

describe('totality', () => {
  it('every prefix and every single-byte change of a call gives a value, never an exception', () => {
    const rec = Buffer.concat([withCred(1, AUTH_SYS_BODY), hex('00000000')]);
    for (let n = 0; n <= rec.length; n++) expect(() => decodeCall(rec.subarray(0, n))).not.toThrow();
    for (let i = 0; i < rec.length; i++) {
      for (const v of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
        const m = Buffer.from(rec);
        m[i] = v;
        expect(() => decodeCall(m)).not.toThrow();
      }
    }
  });

  it('decodeReply throws only XdrError', () => {
    expect(() => decodeReply(hex('00000001 00000000'))).toThrow(XdrError);
  });
});
