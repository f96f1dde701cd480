/**
 * SMB2/3 crypto against published vectors and an independent implementation:
 * - AES-CMAC: RFC 4493 §4 (all four examples).
 * - SP800-108 KDF: the SMB 3.0 encryption/decryption keys of Microsoft's "Encryption in SMB 3.0:
 *   a protocol perspective" (Open Specifications blog), and impacket's KDF_CounterMode for the
 *   3.0 and 3.1.1 labels with random keys and preauth hashes.
 * - Encryption: the same blog's AES-128-CCM encrypted request and decrypted response.
 * - Signing: HMAC-SHA256 over a captured SMB 2.1 response (its signature is in the capture);
 *   AES-CMAC against impacket; AES-GMAC and the four ciphers against pycryptodome.
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import {
  PreauthHash,
  aesCmac,
  aesCmacParts,
  computeSignature,
  decryptMessage,
  deriveKeys,
  encryptMessage,
  encryptMessageParts,
  kdfCounterSha256,
  signMessage,
  signMessageParts,
  verifySignature,
} from '../../protocols/smb/crypto.ts';
import { Cipher, Dialect, SigningAlgorithm } from '../../protocols/smb/messages/negotiate.ts';
import { hasImpacket, runPython } from './python.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s,]|0x/g, ''), 'hex');

describe('AES-CMAC (RFC 4493 §4)', () => {
  const key = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
  const m = hex('6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710');
  it.each([
    [0, 'bb1d6929 e9593728 7fa37d12 9b756746'],
    [16, '070a16b4 6b4d4144 f79bdd9d d04a287c'],
    [40, 'dfa66747 de9ae630 30ca3261 1497c827'],
    [64, '51f0bebf 7e3b9d92 fc497417 79363cfe'],
  ])('example with %i bytes', (len, tag) => {
    expect(aesCmac(key, m.subarray(0, len)).toString('hex')).toBe(hex(tag).toString('hex'));
  });
});

describe('AES-CMAC over parts (how signing avoids copying the message)', () => {
  it('equals the CMAC of the concatenation for any split', () => {
    const key = randomBytes(16);
    for (const len of [0, 1, 15, 16, 17, 48, 64, 65, 100, 1000]) {
      const m = randomBytes(len);
      const whole = aesCmac(key, m).toString('hex');
      for (let t = 0; t < 10; t++) {
        const cuts = [Math.floor(Math.random() * (len + 1)), Math.floor(Math.random() * (len + 1))].sort((a, b) => a - b);
        const parts = [m.subarray(0, cuts[0]), m.subarray(cuts[0], cuts[1]), m.subarray(cuts[1])];
        expect(aesCmacParts(key, parts).toString('hex')).toBe(whole);
      }
    }
  });
});

describe('SMB 3.0 keys and AES-128-CCM (Microsoft Open Specifications blog vectors)', () => {
  const sessionKey = hex('B4546771B515F766A86735532DD6C4F0');
  const clientEncryptionKey = '261b72350558f2e9dcf613070383edbf'; // the server's decryption key (ServerIn)
  const clientDecryptionKey = '8fe2b57ec34d2db5b1a9727f526bbdb5'; // the server's encryption key (ServerOut)

  it('derives ServerIn and ServerOut with label "SMB2AESCCM"', () => {
    const k = deriveKeys(sessionKey, Dialect.SMB3_0);
    expect(k.decryptionKey.toString('hex')).toBe(clientEncryptionKey);
    expect(k.encryptionKey.toString('hex')).toBe(clientDecryptionKey);
  });

  it('encrypts the blog\'s WRITE request to its ciphertext', () => {
    const message = hex(`FE534D42400001000000000009004000080000000000000004000000000000
      00FFFE0000010000001100001400E408000000000000000000000000000000000031007000170000000000000000000000
      150100003900000201000000390200000000000000000000700000000000000053 6D6233 20656E6372797074696F6E2074657374696E67`);
    const nonce = hex('66E69A111892584FB5ED52');
    const out = encryptMessage(message, hex(clientEncryptionKey), Cipher.AES_128_CCM, 0x8e40014000011n, nonce);
    expect(out.subarray(52).toString('hex')).toBe(
      hex(`25C8FEE16605A437832D1CD52DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A44C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6C627297075D84B7803912D0A963963445 3595EF3E33FFE4E7AC2AB`).toString('hex'),
    );
  });

  it('decrypts and authenticates the blog\'s WRITE response (and refuses it tampered)', () => {
    const packet = hex(`FD534D42A6015530A18F6D9AFFE22AFAE8E6648486000000000000001100001400E40800500000000000010011000014
      00E40800DBF46435C5F14169293CE079E344479BF670227E49873F458672C3098DAC467DD5809F369D674091665157871483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D177309E5B`);
    const plain = decryptMessage(packet, hex(clientDecryptionKey), Cipher.AES_128_CCM);
    expect(plain?.toString('hex')).toBe(
      hex('FE534D4240000100000000000900210009000000000000000400000000000000FFFE0000010000001100001400E4080000000000000000000000000000000000110000001700000000000000000000 00').toString('hex'),
    );
    const bad = Buffer.from(packet);
    bad[60]! ^= 1;
    expect(decryptMessage(bad, hex(clientDecryptionKey), Cipher.AES_128_CCM)).toBeUndefined();
  });
});

describe('signing', () => {
  it('HMAC-SHA256 (2.x) gives the signature in a captured SMB 2.1 response', () => {
    const key = hex('D38354CC374339F0524F789146789921');
    const msg = hex(`fe534d424000010028 0100c00b00070009000000000000000400000000000000fffe000001000000010000000004 0000
      fbd284340324c62fbebb65dd1051f3ae 0900000000000000ff`);
    expect(computeSignature(msg, key, SigningAlgorithm.HMAC_SHA256).toString('hex')).toBe('fbd284340324c62fbebb65dd1051f3ae');
    expect(verifySignature(msg, key, SigningAlgorithm.HMAC_SHA256)).toBe(true);
    msg[70]! ^= 1;
    expect(verifySignature(msg, key, SigningAlgorithm.HMAC_SHA256)).toBe(false);
  });

  it('signMessage sets SMB2_FLAGS_SIGNED and verifySignature accepts it, for every algorithm', () => {
    const key = randomBytes(16);
    for (const alg of [SigningAlgorithm.HMAC_SHA256, SigningAlgorithm.AES_CMAC, SigningAlgorithm.AES_GMAC]) {
      const msg = randomBytes(200);
      msg.writeUInt32LE(0x424d53fe, 0);
      signMessage(msg, key, alg);
      expect(msg.readUInt32LE(16) & 8).toBe(8);
      expect(verifySignature(msg, key, alg)).toBe(true);
      msg[150]! ^= 0x80;
      expect(verifySignature(msg, key, alg)).toBe(false);
    }
  });

  it('a message signed as pieces (a READ response and its payload) equals it signed whole, for every algorithm', () => {
    const key = randomBytes(16);
    for (const alg of [SigningAlgorithm.HMAC_SHA256, SigningAlgorithm.AES_CMAC, SigningAlgorithm.AES_GMAC]) {
      for (const split of [64, 80, 81, 95, 96]) {
        const msg = randomBytes(1000 + split);
        msg.writeUInt32LE(0x424d53fe, 0);
        const whole = Buffer.from(msg);
        signMessage(whole, key, alg);
        const pieces = [Buffer.from(msg.subarray(0, split)), Buffer.from(msg.subarray(split))];
        signMessageParts(pieces, key, alg);
        expect(Buffer.concat(pieces).equals(whole)).toBe(true);
      }
    }
  });

  it('AES-GMAC: nonce is MessageId + role bit + cancel bit (checked against pycryptodome)', async () => {
    if (!(await hasImpacket())) return;
    const key = randomBytes(16);
    const cases = [0, 1].flatMap((server) =>
      [0x0c, 0x08].map((command) => {
        const msg = randomBytes(120);
        msg.writeUInt32LE(0x424d53fe, 0);
        msg.writeUInt16LE(command, 12);
        msg.writeUInt32LE(server, 16);
        msg.writeBigUInt64LE(0x1122334455667788n, 24);
        return msg;
      }),
    );
    const py = await runPython(
      `from Cryptodome.Cipher import AES
out = {'sigs': []}
for m in inp['msgs']:
    m = bytearray(h(m)); m[48:64] = bytes(16)
    flags = int.from_bytes(m[16:20], 'little'); cmd = int.from_bytes(m[12:14], 'little')
    nonce = bytes(m[24:32]) + ((1 if flags & 1 else 0) | (2 if cmd == 0x0c else 0)).to_bytes(4, 'little')
    c = AES.new(h(inp['key']), AES.MODE_GCM, nonce=nonce); c.update(bytes(m)); c.encrypt(b'')
    out['sigs'].append(c.digest().hex())`,
      { key: key.toString('hex'), msgs: cases.map((c) => c.toString('hex')) },
    );
    expect(cases.map((c) => computeSignature(c, key, SigningAlgorithm.AES_GMAC).toString('hex'))).toEqual(py.sigs);
  });

  it('AES-CMAC over messages of every length class matches impacket', async () => {
    if (!(await hasImpacket())) return;
    const key = randomBytes(16);
    const msgs = [0, 1, 15, 16, 17, 64, 65, 1000].map((n) => randomBytes(n));
    const py = await runPython(
      `from impacket import crypto
out = {'tags': [crypto.AES_CMAC(h(inp['key']), h(m), len(h(m))).hex() for m in inp['msgs']]}`,
      { key: key.toString('hex'), msgs: msgs.map((m) => m.toString('hex')) },
    );
    expect(msgs.map((m) => aesCmac(key, m).toString('hex'))).toEqual(py.tags);
  });
});

describe('SP800-108 KDF and session keys against impacket', () => {
  it('3.0 and 3.1.1 labels, 128 and 256 bits', async () => {
    if (!(await hasImpacket())) return;
    const sk = randomBytes(16);
    const preauth = randomBytes(64);
    const py = await runPython(
      `from impacket import crypto
sk = h(inp['sk']); pa = h(inp['pa'])
K = lambda label, ctx, L=128: crypto.KDF_CounterMode(sk, label, ctx, L).hex()
out = {
  'sign30': K(b"SMB2AESCMAC\\x00", b"SmbSign\\x00"), 'app30': K(b"SMB2APP\\x00", b"SmbRpc\\x00"),
  'in30': K(b"SMB2AESCCM\\x00", b"ServerIn \\x00"), 'out30': K(b"SMB2AESCCM\\x00", b"ServerOut\\x00"),
  'sign311': K(b"SMBSigningKey\\x00", pa), 'app311': K(b"SMBAppKey\\x00", pa),
  'c2s311': K(b"SMBC2SCipherKey\\x00", pa), 's2c311': K(b"SMBS2CCipherKey\\x00", pa),
  'c2s311_256': K(b"SMBC2SCipherKey\\x00", pa, 256),
}`,
      { sk: sk.toString('hex'), pa: preauth.toString('hex') },
    );
    const k30 = deriveKeys(sk, Dialect.SMB3_0_2);
    expect([k30.signingKey, k30.applicationKey, k30.decryptionKey, k30.encryptionKey].map((b) => b.toString('hex'))).toEqual([py.sign30, py.app30, py.in30, py.out30]);
    const k311 = deriveKeys(sk, Dialect.SMB3_1_1, { preauthHash: preauth, cipher: Cipher.AES_128_GCM });
    expect([k311.signingKey, k311.applicationKey, k311.decryptionKey, k311.encryptionKey].map((b) => b.toString('hex'))).toEqual([py.sign311, py.app311, py.c2s311, py.s2c311]);
    const k256 = deriveKeys(sk, Dialect.SMB3_1_1, { preauthHash: preauth, cipher: Cipher.AES_256_GCM });
    expect(k256.decryptionKey.toString('hex')).toBe(py.c2s311_256);
    expect(k256.decryptionKey.length).toBe(32);
    expect(k256.signingKey).toEqual(k311.signingKey);
  });

  it('2.x signs with the session key itself', () => {
    const sk = randomBytes(16);
    expect(deriveKeys(sk, Dialect.SMB2_1).signingKey).toEqual(sk);
  });

  it('kdf truncates to L bits', () => {
    expect(kdfCounterSha256(Buffer.alloc(16), Buffer.from('a\0'), Buffer.from('b\0'), 128).length).toBe(16);
  });
});

describe('TRANSFORM_HEADER encryption, every cipher', () => {
  it.each([
    ['AES-128-CCM', Cipher.AES_128_CCM, 16, 11, 'MODE_CCM'],
    ['AES-128-GCM', Cipher.AES_128_GCM, 16, 12, 'MODE_GCM'],
    ['AES-256-CCM', Cipher.AES_256_CCM, 32, 11, 'MODE_CCM'],
    ['AES-256-GCM', Cipher.AES_256_GCM, 32, 12, 'MODE_GCM'],
  ] as const)('%s round-trips and matches pycryptodome', async (_n, cipher, keyLen, nonceLen, mode) => {
    const key = randomBytes(keyLen);
    const msg = randomBytes(300);
    const nonce = randomBytes(nonceLen);
    const enc = encryptMessage(msg, key, cipher, 0x1234n, nonce);
    expect(enc.readUInt32LE(0)).toBe(0x424d53fd);
    expect(decryptMessage(enc, key, cipher)).toEqual(msg);
    const tampered = Buffer.from(enc);
    tampered[44]! ^= 1; // SessionId is authenticated (AAD)
    expect(decryptMessage(tampered, key, cipher)).toBeUndefined();
    if (!(await hasImpacket())) return;
    const py = await runPython(
      `from Cryptodome.Cipher import AES
e = h(inp['enc']); c = AES.new(h(inp['key']), AES.${mode}, nonce=e[20:20+${nonceLen}]${mode === 'MODE_CCM' ? ', mac_len=16' : ''})
c.update(e[20:52])
out = {'plain': c.decrypt_and_verify(e[52:], e[4:20]).hex()}`,
      { enc: enc.toString('hex'), key: key.toString('hex') },
    );
    expect(py.plain).toBe(msg.toString('hex'));
  });

  it.each([Cipher.AES_128_CCM, Cipher.AES_128_GCM, Cipher.AES_256_CCM, Cipher.AES_256_GCM])('cipher %i: a message encrypted as pieces equals it encrypted whole', (cipher) => {
    const key = randomBytes(cipher === Cipher.AES_256_CCM || cipher === Cipher.AES_256_GCM ? 32 : 16);
    const nonce = randomBytes(cipher === Cipher.AES_128_CCM || cipher === Cipher.AES_256_CCM ? 11 : 12);
    const msg = randomBytes(70_000);
    const whole = encryptMessage(msg, key, cipher, 7n, nonce);
    const parts = encryptMessageParts([msg.subarray(0, 80), msg.subarray(80, 65_617), msg.subarray(65_617)], key, cipher, 7n, nonce);
    expect(parts[0]!.length).toBe(52);
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
  });

  it.each([Cipher.AES_128_CCM, Cipher.AES_128_GCM, Cipher.AES_256_CCM, Cipher.AES_256_GCM])('cipher %i: in place (a large piece the caller owns, a large message decrypted where it lies) gives the same bytes', (cipher) => {
    const gcm = cipher === Cipher.AES_128_GCM || cipher === Cipher.AES_256_GCM;
    const key = randomBytes(cipher === Cipher.AES_256_CCM || cipher === Cipher.AES_256_GCM ? 32 : 16);
    const nonce = randomBytes(gcm ? 12 : 11);
    const head = randomBytes(80);
    const payload = randomBytes(300_001); // several 64 KiB slices and a short last one
    const whole = encryptMessage(Buffer.concat([head, payload]), key, cipher, 9n, nonce);
    const mine = Buffer.from(payload);
    const parts = encryptMessageParts([head, mine], key, cipher, 9n, nonce, { inPlaceFrom: 1 });
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
    // GCM turns the owned piece into its ciphertext and sends that buffer; CCM never touches it.
    expect(parts.includes(mine)).toBe(gcm);
    expect(mine.equals(payload)).toBe(!gcm);
    expect(head.length).toBe(80);

    const received = Buffer.from(whole);
    const plain = decryptMessage(received, key, cipher, { inPlace: true })!;
    expect(Buffer.concat([head, payload]).equals(plain)).toBe(true);
    expect(plain.buffer === received.buffer && plain.byteOffset === received.byteOffset + 52).toBe(gcm);
    const tampered = Buffer.from(whole);
    tampered[100]! ^= 1;
    expect(decryptMessage(tampered, key, cipher, { inPlace: true })).toBeUndefined();
  });
});

describe('preauth integrity hash', () => {
  it('chains SHA-512 from 64 zero bytes, and a session forks from the connection', () => {
    const a = randomBytes(100);
    const b = randomBytes(50);
    const conn = new PreauthHash().update(a);
    const h1 = createHash('sha512').update(Buffer.alloc(64)).update(a).digest();
    expect(conn.value).toEqual(h1);
    const sess = conn.fork().update(b);
    expect(sess.value).toEqual(createHash('sha512').update(h1).update(b).digest());
    expect(conn.value).toEqual(h1);
  });
});
