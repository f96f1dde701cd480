/**
 * NTLMSSP server side:
 * - MS-NLMP 4.2.4 (NTLMv2 example: user "User", domain "Domain", password "Password", server
 *   challenge 0123456789abcdef, random session key 0x55 x16): the published AUTHENTICATE_MESSAGE
 *   (4.2.4.3) is decoded and verified; NTOWFv2, NTProofStr (4.2.4.2.2), the session base key and
 *   the KEY_EXCH exported session key (the RandomSessionKey, from 4.2.4.2.3's encrypted key) match.
 * - impacket's NTLM client (an independent implementation) authenticates against NtlmServer with
 *   the right and a wrong password; its exported session key is the one the server derives.
 * - The NTLM signature (mechListMIC) against impacket's SIGN/SIGNKEY/SEALKEY with RC4 sealing.
 * - RC4 against RFC 6229; every decoder bounded.
 */
import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { ntHash } from '../../src/auth/md4.ts';
import {
  NtlmFlags,
  NtlmServer,
  NtlmSigner,
  computeMic,
  decodeAuthenticateMessage,
  decodeChallengeMessage,
  decodeNegotiateMessage,
  ntowfv2,
} from '../../protocols/smb/ntlm.ts';
import { rc4 } from '../../protocols/smb/rc4.ts';
import { SmbDecodeError, tryDecode } from '../../protocols/smb/wire.ts';
import { hasImpacket, runPython } from './python.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** MS-NLMP 4.2.4.3 AUTHENTICATE_MESSAGE (NTLMv2, flags 0xe2888235, no MIC). */
const NLMP_AUTHENTICATE = hex(`
4e544c4d5353500003000000180018006c00000054005400840000000c000c00480000000800080054000000100010005c000000
10001000d8000000358288e20501280a0000000f44006f006d00610069006e00550073006500720043004f004d00500055005400
4500520086c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa68cd0ab851e51c96aabc927bebef6a1c0101000000000000
0000000000000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e0001000c00530065007200760065007200
0000000000000000c5dad2544fc9799094ce1ce90bc9d03e`);

describe('MS-NLMP 4.2.4 NTLMv2 vectors', () => {
  const hash = ntHash('Password');
  it('NT hash and NTOWFv2', () => {
    expect(hash.toString('hex')).toBe('a4f49c406510bdcab6824ee7c30fd852');
    expect(ntowfv2(hash, 'User', 'Domain').toString('hex')).toBe('0c868a403bfd7a93a3001ef22ef02e3f');
  });

  it('decodes the published AUTHENTICATE_MESSAGE', () => {
    const a = decodeAuthenticateMessage(NLMP_AUTHENTICATE);
    expect(a.flags >>> 0).toBe(0xe2888235);
    expect([a.user, a.domain, a.workstation]).toEqual(['User', 'Domain', 'COMPUTER']);
    expect(a.ntResponse.subarray(0, 16).toString('hex')).toBe('68cd0ab851e51c96aabc927bebef6a1c');
    expect(a.encryptedRandomSessionKey.toString('hex')).toBe('c5dad2544fc9799094ce1ce90bc9d03e');
    expect(a.mic).toBeUndefined();
  });

  it('verifies it: NTProofStr, session base key, exported session key', () => {
    const server = new NtlmServer({ computerName: 'Server', domainName: 'Domain', serverChallenge: hex('0123456789abcdef') });
    const a = decodeAuthenticateMessage(NLMP_AUTHENTICATE);
    const r = server.verify(NLMP_AUTHENTICATE, a, hash);
    expect(r.ok && !r.anonymous).toBe(true);
    if (!r.ok || r.anonymous) return;
    expect(r.sessionBaseKey.toString('hex')).toBe('8de40ccadbc14a82f15cb0ad0de95ca3');
    expect(r.exportedSessionKey.toString('hex')).toBe('55'.repeat(16));
    expect(server.verify(NLMP_AUTHENTICATE, a, ntHash('password'))).toEqual({ ok: false, reason: 'bad-password' });
    expect(server.verify(NLMP_AUTHENTICATE, a, undefined)).toEqual({ ok: false, reason: 'unknown-user' });
    const other = new NtlmServer({ computerName: 'Server', domainName: 'Domain', serverChallenge: hex('0123456789abcdee') });
    expect(other.verify(NLMP_AUTHENTICATE, a, hash)).toEqual({ ok: false, reason: 'bad-password' });
  });
});

describe('RC4 (RFC 6229 key 0x0102030405)', () => {
  it('key stream at offset 0', () => {
    expect(rc4(hex('0102030405'), Buffer.alloc(16)).toString('hex')).toBe('b2396305f03dc027ccc3524a0a1118a8');
  });
});

describe('against impacket\'s NTLM client', () => {
  async function login(password: string, serverPassword: string) {
    const server = new NtlmServer({ computerName: 'PORTICO', domainName: 'WORKGROUP' });
    const py1 = await runPython(`from impacket import ntlm
t1 = ntlm.getNTLMSSPType1('', '', signingRequired=True, use_ntlmv2=True)
out = {'t1': t1.getData().hex()}`, {});
    const challenge = server.challenge(hex(py1.t1));
    const py3 = await runPython(`from impacket import ntlm
t1 = ntlm.NTLMAuthNegotiate(); t1.fromString(h(inp['t1']))
t3, key = ntlm.getNTLMSSPType3(t1, h(inp['t2']), 'alice', inp['pw'], 'WORKGROUP', use_ntlmv2=True)
out = {'t3': t3.getData().hex(), 'key': key.hex()}`, { t1: py1.t1, t2: challenge.toString('hex'), pw: password });
    const authBytes = hex(py3.t3);
    const auth = decodeAuthenticateMessage(authBytes);
    return { auth, result: server.verify(authBytes, auth, ntHash(serverPassword)), clientKey: py3.key as string, challenge };
  }

  it('the right password: the server derives the client\'s exported session key', async () => {
    if (!(await hasImpacket())) return;
    const { auth, result, clientKey, challenge } = await login('s3cret pw', 's3cret pw');
    expect(auth.user).toBe('alice');
    expect(result.ok && !result.anonymous && result.exportedSessionKey.toString('hex')).toBe(clientKey);
    const c = decodeChallengeMessage(challenge);
    expect(c.targetInfo.map((p) => p.id)).toEqual([2, 1, 4, 3, 7]);
    expect(c.flags & NtlmFlags.EXTENDED_SESSIONSECURITY).toBeTruthy();
  });

  it('a wrong password is refused', async () => {
    if (!(await hasImpacket())) return;
    const { result } = await login('wrong', 's3cret pw');
    expect(result).toEqual({ ok: false, reason: 'bad-password' });
  });
});

describe('MIC', () => {
  it('a MIC over the three messages is checked when the client announces one', () => {
    // A synthetic AUTHENTICATE with MsvAvFlags=2 built from the NLMP example's pieces.
    const server = new NtlmServer({ computerName: 'Server', domainName: 'Domain', serverChallenge: hex('0123456789abcdef') });
    const negotiate = hex('4e544c4d535350000100000033828ae2000000000000000000000000000000000000000000000000');
    server.challenge(negotiate);
    const hash = ntHash('Password');
    const key = ntowfv2(hash, 'User', 'Domain');
    const blob = Buffer.concat([
      hex('0101000000000000'), Buffer.alloc(8), hex('aaaaaaaaaaaaaaaa'), Buffer.alloc(4),
      hex('02000c0044006f006d00610069006e00'), hex('0600040002000000'), hex('00000000'), Buffer.alloc(4),
    ]);
    const proof = createHmac('md5', key).update(Buffer.concat([server.serverChallenge, blob])).digest();
    const nt = Buffer.concat([proof, blob]);
    const user = Buffer.from('User', 'utf16le');
    const dom = Buffer.from('Domain', 'utf16le');
    const base = 88;
    const msg = Buffer.alloc(base + dom.length + user.length + nt.length);
    Buffer.from('NTLMSSP\0', 'latin1').copy(msg);
    msg.writeUInt32LE(3, 8);
    const f = (at: number, len: number, off: number) => { msg.writeUInt16LE(len, at); msg.writeUInt16LE(len, at + 2); msg.writeUInt32LE(off, at + 4); };
    f(12, 0, base); f(20, nt.length, base + dom.length + user.length); f(28, dom.length, base); f(36, user.length, base + dom.length); f(44, 0, base); f(52, 0, base);
    msg.writeUInt32LE(NtlmFlags.UNICODE | NtlmFlags.EXTENDED_SESSIONSECURITY | NtlmFlags.N128, 60);
    dom.copy(msg, base); user.copy(msg, base + dom.length); nt.copy(msg, base + dom.length + user.length);
    const sessionBaseKey = createHmac('md5', key).update(proof).digest();
    computeMic(sessionBaseKey, negotiate, server.challengeBytes!, msg).copy(msg, 72);
    const auth = decodeAuthenticateMessage(msg);
    expect(auth.mic).toBeDefined();
    expect(server.verify(msg, auth, hash).ok).toBe(true);
    msg[75]! ^= 1;
    expect(server.verify(msg, decodeAuthenticateMessage(msg), hash)).toEqual({ ok: false, reason: 'bad-mic' });
  });
});

describe('NTLM signature (the SPNEGO mechListMIC) against impacket', () => {
  it('client-to-server and server-to-client, sealed with RC4 under KEY_EXCH, two sequence numbers', async () => {
    if (!(await hasImpacket())) return;
    const key = randomBytes(16);
    const flags = (NtlmFlags.EXTENDED_SESSIONSECURITY | NtlmFlags.N128 | NtlmFlags.KEY_EXCH | NtlmFlags.SIGN) >>> 0;
    const m1 = randomBytes(30);
    const m2 = randomBytes(50);
    const py = await runPython(`from impacket import ntlm
from Cryptodome.Cipher import ARC4
k = h(inp['key']); f = inp['flags']; out = {}
for mode in ['Client', 'Server']:
    sk = ntlm.SIGNKEY(f, k, mode); seal = ARC4.new(ntlm.SEALKEY(f, k, mode)).encrypt
    out[mode] = [ntlm.SIGN(f, sk, h(m), i, seal).getData().hex() for i, m in enumerate([inp['m1'], inp['m2']])]`,
      { key: key.toString('hex'), flags, m1: m1.toString('hex'), m2: m2.toString('hex') });
    const c = new NtlmSigner(key, 'client-to-server', flags);
    const s = new NtlmSigner(key, 'server-to-client', flags);
    expect([c.sign(m1), c.sign(m2)].map((b) => b.toString('hex'))).toEqual(py.Client);
    expect([s.sign(m1), s.sign(m2)].map((b) => b.toString('hex'))).toEqual(py.Server);
    const v = new NtlmSigner(key, 'client-to-server', flags);
    expect(v.verify(m1, hex(py.Client[0]))).toBe(true);
  });
});

describe('bounds', () => {
  it('truncations of every message give SmbDecodeError, never another error', () => {
    for (let n = 0; n < NLMP_AUTHENTICATE.length; n++) {
      const r = tryDecode(() => decodeAuthenticateMessage(NLMP_AUTHENTICATE.subarray(0, n)));
      if (!r.ok) expect(r.error).toBeInstanceOf(SmbDecodeError);
    }
    const neg = hex('4e544c4d535350000100000033828ae2000000000000000000000000000000000000000000000000');
    for (let n = 0; n < neg.length; n++) tryDecode(() => decodeNegotiateMessage(neg.subarray(0, n)));
  });

  it('a payload field pointing past the message is refused', () => {
    const bad = Buffer.from(NLMP_AUTHENTICATE);
    bad.writeUInt32LE(0xfffffff0, 24);
    const r = tryDecode(() => decodeAuthenticateMessage(bad));
    expect(r.ok).toBe(false);
  });
});
