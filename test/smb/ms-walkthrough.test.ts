/**
 * The SMB 3.1.1 walkthrough published by Microsoft's Open Specifications team ("SMB 2 and SMB 3
 * security in Windows 10: the anatomy of signing and cryptographic keys", appendix "Key derivation
 * examples"): a Windows 10 client and server negotiating 3.1.1 and authenticating
 * "administrator" (password "Password01!", domain SUT311) with NTLMv2 in SPNEGO, every packet
 * printed with the preauth integrity hash after it, and the resulting keys. Portico's decoders
 * read every packet, the preauth chain reproduces every hash, NTLM verifies Windows' NTProofStr
 * and MIC, the SPNEGO mechListMICs match Windows' both ways, the keys match, and signing the final
 * SESSION_SETUP response reproduces Windows' signature — for the first channel and for the
 * session-binding channel. The SMB 3.0 key example is checked too.
 */
import { describe, expect, it } from 'vitest';
import { PreauthHash, computeSignature, deriveKeys } from '../../protocols/smb/crypto.ts';
import { Command, readHeader, splitCompound } from '../../protocols/smb/header.ts';
import { Cipher, Dialect, SigningAlgorithm, decodeNegotiateRequest, decodeNegotiateResponse } from '../../protocols/smb/messages/negotiate.ts';
import { decodeSessionSetupRequest, decodeSessionSetupResponse } from '../../protocols/smb/messages/session-setup.ts';
import { NtlmServer, NtlmSigner, decodeAuthenticateMessage, decodeChallengeMessage, decodeNegotiateMessage, ntowfv2 } from '../../protocols/smb/ntlm.ts';
import { OID, decodeSpnego } from '../../protocols/smb/spnego.ts';
import { ntHash } from '../../src/auth/md4.ts';
import { BIND_RESP_FINAL, NEG_REQ, NEG_RESP, SS_REQ1, SS_REQ2, SS_RESP1, SS_RESP_FINAL } from './fixtures/ms-smb311.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const up = (b: Buffer): string => b.toString('hex').toUpperCase();

const HASHES = [
  'DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426',
  '324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E997E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513',
  'AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9',
  '2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B8835740A73760085633364C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387',
  '0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D9751640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01',
];
const SESSION_KEY = hex('270E1BA896585EEB7AF3472D3B4C75A7');

describe('Microsoft\'s SMB 3.1.1 walkthrough: packets, preauth hash, NTLMv2, keys, signature', () => {
  it('decodes the NEGOTIATE request and response (3.1.1 contexts, SPNEGO NegTokenInit2 with NEGOEX)', () => {
    const q = decodeNegotiateRequest(NEG_REQ);
    expect(q.dialects).toEqual([0x0202, 0x0210, 0x0300, 0x0302, 0x0311]);
    expect(q.contexts).toEqual([
      { type: 1, hashAlgorithms: [1], salt: hex('FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF') },
      { type: 2, ciphers: [Cipher.AES_128_GCM, Cipher.AES_128_CCM] },
    ]);
    const p = decodeNegotiateResponse(NEG_RESP);
    expect(p.dialect).toBe(Dialect.SMB3_1_1);
    expect(p.maxReadSize).toBe(0x800000);
    expect(p.contexts.map((c) => c.type)).toEqual([1, 2]);
    expect(p.contexts[1]).toEqual({ type: 2, ciphers: [Cipher.AES_128_GCM] });
    const init = decodeSpnego(p.securityBuffer);
    expect(init).toMatchObject({ kind: 'init', mechTypes: [OID.NEGOEX, OID.NTLMSSP] });
  });

  it('the preauth integrity chain reproduces every published hash value', () => {
    const conn = new PreauthHash();
    expect(up(conn.update(NEG_REQ).value)).toBe(HASHES[0]);
    expect(up(conn.update(NEG_RESP).value)).toBe(HASHES[1]);
    const sess = conn.fork();
    expect(up(sess.update(SS_REQ1).value)).toBe(HASHES[2]);
    expect(up(sess.update(SS_RESP1).value)).toBe(HASHES[3]);
    expect(up(sess.update(SS_REQ2).value)).toBe(HASHES[4]);
  });

  it('NTLMv2: Windows\' AUTHENTICATE verifies against the NT hash of "Password01!", its MIC included; the exported key is the session key', () => {
    const t1 = decodeSpnego(decodeSessionSetupRequest(SS_REQ1).securityBuffer);
    const r1 = decodeSpnego(decodeSessionSetupResponse(SS_RESP1).securityBuffer);
    const t2 = decodeSpnego(decodeSessionSetupRequest(SS_REQ2).securityBuffer);
    if (t1.kind !== 'init' || r1.kind !== 'resp' || t2.kind !== 'resp') throw new Error('unexpected SPNEGO shapes');
    expect(t1.mechTypes).toEqual([OID.NTLMSSP]);
    expect(decodeNegotiateMessage(t1.mechToken!).flags >>> 0).toBe(0xe2088297);
    const challenge = decodeChallengeMessage(r1.responseToken!);
    expect(up(challenge.serverChallenge)).toBe('0D1D8BA31179D008');
    expect(challenge.targetName).toBe('SUT311');
    const authBytes = t2.responseToken!;
    const auth = decodeAuthenticateMessage(authBytes);
    expect([auth.user, auth.domain, auth.workstation]).toEqual(['administrator', 'SUT311', 'DRIVER311']);
    expect(up(auth.mic!)).toBe('ECAC77A5F385A8BF9C38C706EEEDDCD3');

    const hash = ntHash('Password01!');
    expect(up(hash)).toBe('7C4FE5EADA682714A036E39378362BAB');
    expect(up(ntowfv2(hash, 'administrator', 'SUT311'))).toBe('AEE3959B44A815F1EB28C9511B4F533B');
    const server = new NtlmServer({ computerName: 'SUT311', domainName: 'SUT311', serverChallenge: challenge.serverChallenge });
    server.negotiateBytes = t1.mechToken!;
    server.challengeBytes = r1.responseToken!;
    const r = server.verify(authBytes, auth, hash);
    expect(r.ok).toBe(true);
    if (!r.ok || r.anonymous) return;
    expect(up(r.sessionBaseKey)).toBe('B4CF22566926B1C069ACD80E4D73C814');
    expect(r.exportedSessionKey).toEqual(SESSION_KEY);
    // A one-bit change anywhere in the AUTHENTICATE message breaks the MIC.
    const tampered = Buffer.from(authBytes);
    tampered[authBytes.length - 1]! ^= 1;
    expect(server.verify(tampered, decodeAuthenticateMessage(tampered), hash)).toEqual({ ok: false, reason: 'bad-mic' });

    // mechListMIC: Windows' client MIC verifies, and Portico's server MIC is byte for byte Windows'.
    expect(new NtlmSigner(SESSION_KEY, 'client-to-server', auth.flags).verify(t1.mechTypesDer, t2.mechListMIC!)).toBe(true);
    const final = decodeSpnego(decodeSessionSetupResponse(SS_RESP_FINAL).securityBuffer);
    expect(final).toMatchObject({ kind: 'resp', negState: 0 });
    if (final.kind !== 'resp') return;
    expect(new NtlmSigner(SESSION_KEY, 'server-to-client', auth.flags).sign(t1.mechTypesDer)).toEqual(final.mechListMIC);
  });

  it('the 3.1.1 keys from the session key and the last hash, and the final SESSION_SETUP response\'s AES-CMAC signature', () => {
    const keys = deriveKeys(SESSION_KEY, Dialect.SMB3_1_1, { preauthHash: hex(HASHES[4]!), cipher: Cipher.AES_128_GCM });
    expect(up(keys.signingKey)).toBe('73FE7A9A77BEF0BDE49C650D8CCB5F76');
    expect(up(keys.applicationKey)).toBe('6D7AD7954E9EC61E907B4D473DC178FF');
    // The walkthrough prints the client's view: its EncryptionKey is what the server decrypts with.
    expect(up(keys.decryptionKey)).toBe('629BCBC54422A0F572B97F45989B6073');
    expect(up(keys.encryptionKey)).toBe('E2AF0DCEFAC68DA71A0DFBD0D1350D74');
    expect(readHeader(SS_RESP_FINAL).command).toBe(Command.SESSION_SETUP);
    expect(up(computeSignature(SS_RESP_FINAL, keys.signingKey, SigningAlgorithm.AES_CMAC))).toBe('EBE146DA120BA25FC3376A49DFE31BC1');
  });

  it('the session-binding channel: its signing key and its final response\'s signature', () => {
    const channelKey = deriveKeys(hex('84B9DBB730116A8FA6E9889555C265F9'), Dialect.SMB3_1_1, {
      preauthHash: hex('EA3BF912B11CBFEC5B1889E8209614218687F82FA5294521AD3063425E49E88A10BD022124CE25123BC9111F52D9566BA88BF46344E6063DC5E3FF0389026F6C'),
    }).signingKey;
    expect(up(channelKey)).toBe('C962BCA1A9DD1697B030644199705431');
    expect(up(computeSignature(BIND_RESP_FINAL, channelKey, SigningAlgorithm.AES_CMAC))).toBe('8D604217FFBACF40635BF9D872992150');
    expect(splitCompound(BIND_RESP_FINAL).ok).toBe(true);
  });
});

describe('Microsoft\'s SMB 3.0 key derivation example (same article)', () => {
  it('master session and second channel', () => {
    const k = deriveKeys(hex('7CD451825D0450D235424E44BA6E78CC'), Dialect.SMB3_0);
    expect(up(k.signingKey)).toBe('0B7E9C5CAC36C0F6EA9AB275298CEDCE');
    expect(up(k.decryptionKey)).toBe('FAD27796665B313EBB578F388632B4F7');
    expect(up(k.encryptionKey)).toBe('B0F0427F7CEB416D1D9DCC0CD4F99447');
    expect(up(k.applicationKey)).toBe('BB23A4575AA26C721AF525AF15A87B4F');
    expect(up(deriveKeys(hex('4E01A2B313BCF660CC250BEF021AEDE6'), Dialect.SMB3_0).signingKey)).toBe('BA1A17DBBFEC349BCA105563D598952F');
  });
});
