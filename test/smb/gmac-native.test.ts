/**
 * The SMB native helper's AES-GMAC and AES-GCM (protocols/smb/native, native.ts): one OpenSSL GCM context per
 * signing key, a new nonce per message. Its tags must be node:crypto's AES-128-GCM tags over the
 * same AAD for any message and nonce, in one piece or several, in ordinary or shared memory (the
 * connection's MessagePool buffers are SharedArrayBuffers), a context used for many messages in
 * turn; and computeSignatureParts must sign the same with the helper and without it
 * (SMB_ADDON_PATH='' in a child process: the node:crypto path); and encryptMessageParts and
 * decryptMessage must give and take the same TRANSFORM_HEADER messages both ways.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeSignatureParts, decryptMessage, encryptMessageParts, signMessageParts, verifySignature } from '../../protocols/smb/crypto.ts';
import { Cipher, SigningAlgorithm } from '../../protocols/smb/messages/negotiate.ts';
import { smbNative, smbNativeAvailability } from '../../protocols/smb/native.ts';

const native = smbNative();
const availability = smbNativeAvailability();
if (!availability.available) console.warn(`SMB native GMAC not tested: ${availability.reason} (enable: ${availability.enable})`);

function nodeTag(key: Buffer, nonce: Buffer, parts: Buffer[]): Buffer {
  const c = createCipheriv('aes-128-gcm', key, nonce, { authTagLength: 16 });
  for (const p of parts) c.setAAD(p);
  c.final();
  return c.getAuthTag();
}

function shared(b: Buffer): Buffer {
  const s = Buffer.from(new SharedArrayBuffer(b.length + 3), 3, b.length);
  b.copy(s);
  return s;
}

describe.skipIf(!native)('native AES-GMAC', () => {
  it('is node:crypto\'s GCM tag for any message, nonce and split, one context for many messages', () => {
    const key = randomBytes(16);
    const g = new native!.Gmac(key);
    const out = Buffer.alloc(40);
    for (let i = 0; i < 500; i++) {
      const nonce = randomBytes(12);
      const n = 1 + (i % 4);
      const parts = Array.from({ length: n }, (_, j) => {
        const b = randomBytes(i % 7 === 0 ? 0 : (i * 37 + j * 101) % (i % 50 === 0 ? 70_000 : 700));
        return j % 2 ? shared(b) : b;
      });
      g.tag(nonce, parts, out, 7);
      expect(out.subarray(7, 23).toString('hex')).toBe(nodeTag(key, nonce, parts).toString('hex'));
    }
  });

  it('keeps one key per context', () => {
    const k1 = randomBytes(16);
    const k2 = randomBytes(16);
    const g1 = new native!.Gmac(k1);
    const g2 = new native!.Gmac(k2);
    const nonce = randomBytes(12);
    const msg = [randomBytes(100)];
    const a = Buffer.alloc(16);
    const b = Buffer.alloc(16);
    g1.tag(nonce, msg, a, 0);
    g2.tag(nonce, msg, b, 0);
    g1.tag(nonce, msg, b, 0);
    expect(b.equals(a)).toBe(true);
    g2.tag(nonce, msg, b, 0);
    expect(b.equals(nodeTag(k2, nonce, msg))).toBe(true);
  });

  it('signs and checks a whole SMB2 message in one call: the same tag as computeSignatureParts, the nonce from its header', () => {
    const key = randomBytes(16);
    const g = new native!.Gmac(key);
    for (let i = 0; i < 300; i++) {
      const m = randomBytes(64 + ((i * 131) % 3000));
      m.writeUInt32LE(0x424d53fe, 0);
      m.writeUInt16LE(i % 4 === 1 ? 0x0c : 0x08, 12); // CANCEL sets nonce bit 1
      m.writeUInt32LE(i % 3 ? 0x9 : 0x8, 16); // SERVER_TO_REDIR sets nonce bit 0
      const msg = i % 2 ? shared(m) : m;
      const payload = i % 5 === 0 ? (i % 10 ? shared(randomBytes(i * 97)) : randomBytes(i * 97)) : undefined;
      const expected = computeSignatureParts(payload ? [Buffer.from(msg), payload] : [Buffer.from(msg)], key, SigningAlgorithm.AES_GMAC);
      g.sign!(msg, payload);
      expect(msg.subarray(48, 64).toString('hex')).toBe(expected.toString('hex'));
      if (payload) continue;
      expect(g.verify!(msg)).toBe(true);
      // Any changed bit — in the signature, the header the nonce comes from, or the body — fails.
      for (const at of [48, 63, 12, 16, 24, 31, 64, msg.length - 1]) {
        msg[at]! ^= 0x01;
        expect(g.verify!(msg)).toBe(false);
        msg[at]! ^= 0x01;
      }
    }
    expect(g.verify!(randomBytes(63))).toBe(false);
    expect(() => g.sign!(randomBytes(63))).toThrow(RangeError);
    expect(() => g.sign!(randomBytes(64), 'x' as unknown as Buffer)).toThrow(TypeError);
  });

  it('refuses a bad nonce, key or output', () => {
    expect(() => new native!.Gmac(randomBytes(15))).toThrow(RangeError);
    const g = new native!.Gmac(randomBytes(16));
    expect(() => g.tag(randomBytes(11), [], Buffer.alloc(16), 0)).toThrow(RangeError);
    expect(() => g.tag(randomBytes(12), [], Buffer.alloc(16), 1)).toThrow(RangeError);
    expect(() => g.tag(randomBytes(12), ['x' as unknown as Buffer], Buffer.alloc(16), 0)).toThrow(TypeError);
  });
});

/**
 * 40 SMB2-shaped messages of 64 to ~3,000 random bytes: the protocol id, commands READ (0x08) and
 * CANCEL (0x0c), the SERVER_TO_REDIR flag on two of three: what the signing nonce is built from.
 */
function fakeMessages(): Buffer[] {
  return Array.from({ length: 40 }, (_, i) => {
    const m = randomBytes(64 + ((i * 131) % 3000));
    m.writeUInt32LE(0x424d53fe, 0);
    m.writeUInt16LE(i % 2 ? 0x0c : 0x08, 12);
    m.writeUInt32LE(i % 3 ? 1 : 0, 16);
    return m;
  });
}

describe('SMB signing with and without the native helper', () => {
  it('AES-GMAC signatures are the same through node:crypto (SMB_ADDON_PATH empty)', () => {
    const key = randomBytes(16);
    const msgs = fakeMessages();
    const here = msgs.map((m, i) => (i % 5 === 4 ? computeSignatureParts([m.subarray(0, 80), m.subarray(80)], key, SigningAlgorithm.AES_GMAC) : computeSignatureParts([m], key, SigningAlgorithm.AES_GMAC)).toString('hex'));
    const script = `
      const { computeSignatureParts } = await import(${JSON.stringify(new URL('../../protocols/smb/crypto.ts', import.meta.url).href)});
      const { smbNative } = await import(${JSON.stringify(new URL('../../protocols/smb/native.ts', import.meta.url).href)});
      const inp = JSON.parse(process.argv[1]);
      const key = Buffer.from(inp.key, 'hex');
      const sigs = inp.msgs.map((h, i) => { const m = Buffer.from(h, 'hex'); return (i % 5 === 4 ? computeSignatureParts([m.subarray(0, 80), m.subarray(80)], key, inp.alg) : computeSignatureParts([m], key, inp.alg)).toString('hex'); });
      console.log(JSON.stringify({ native: smbNative() !== undefined, sigs }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify({ alg: SigningAlgorithm.AES_GMAC, key: key.toString('hex'), msgs: msgs.map((m) => m.toString('hex')) })], { env: { ...process.env, SMB_ADDON_PATH: '' }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { native: boolean; sigs: string[] };
    expect(out.native).toBe(false);
    expect(out.sigs).toEqual(here);
  });

  it('signMessageParts and verifySignature (the server\'s calls) agree with node:crypto both ways (SMB_ADDON_PATH empty)', () => {
    const key = randomBytes(16);
    const msgs = fakeMessages();
    // Signed here (the helper when built): one piece, or a head and a payload (a READ response).
    const signed = msgs.map((m, i) => {
      const pieces = i % 5 === 4 ? [Buffer.from(m.subarray(0, 80)), Buffer.from(m.subarray(80))] : [Buffer.from(m)];
      signMessageParts(pieces, key, SigningAlgorithm.AES_GMAC);
      return Buffer.concat(pieces);
    });
    for (const m of signed) {
      expect(verifySignature(m, key, SigningAlgorithm.AES_GMAC)).toBe(true);
      const bad = Buffer.from(m);
      bad[bad.length - 1]! ^= 0x80;
      expect(verifySignature(bad, key, SigningAlgorithm.AES_GMAC)).toBe(false);
    }
    const script = `
      const { signMessageParts, verifySignature } = await import(${JSON.stringify(new URL('../../protocols/smb/crypto.ts', import.meta.url).href)});
      const { smbNative } = await import(${JSON.stringify(new URL('../../protocols/smb/native.ts', import.meta.url).href)});
      const inp = JSON.parse((await import('node:fs')).readFileSync(0, 'utf8'));
      const key = Buffer.from(inp.key, 'hex');
      const sigs = inp.msgs.map((h, i) => { const m = Buffer.from(h, 'hex'); const pieces = i % 5 === 4 ? [m.subarray(0, 80), m.subarray(80)] : [m]; signMessageParts(pieces, key, inp.alg); return Buffer.concat(pieces).toString('hex'); });
      const verified = inp.signed.map((h) => verifySignature(Buffer.from(h, 'hex'), key, inp.alg));
      console.log(JSON.stringify({ native: smbNative() !== undefined, sigs, verified }));`;
    const input = JSON.stringify({ alg: SigningAlgorithm.AES_GMAC, key: key.toString('hex'), msgs: msgs.map((m) => m.toString('hex')), signed: signed.map((m) => m.toString('hex')) });
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { input, env: { ...process.env, SMB_ADDON_PATH: '' }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { native: boolean; sigs: string[]; verified: boolean[] };
    expect(out.native).toBe(false);
    expect(out.sigs).toEqual(signed.map((m) => m.toString('hex')));
    expect(out.verified.every(Boolean)).toBe(true);
  });
});

describe('SMB encryption (TRANSFORM_HEADER, AES-GCM) with and without the native helper', () => {
  it('encryptMessageParts gives the same bytes through node:crypto (SMB_ADDON_PATH empty), and each side decrypts the other\'s', () => {
    const cases = [Cipher.AES_128_GCM, Cipher.AES_256_GCM, Cipher.AES_128_CCM].flatMap((cipher) =>
      [100, 4096 + 64, 70_000, 300_000].map((n, i) => ({ cipher, key: randomBytes(cipher === Cipher.AES_256_GCM ? 32 : 16), nonce: randomBytes(cipher === Cipher.AES_128_CCM ? 11 : 12), head: randomBytes(64 + i), payload: randomBytes(n) })),
    );
    // Here (the helper when built): one piece, and a head with a payload encrypted where it lies.
    const here = cases.map((k) => {
      const whole = Buffer.concat(encryptMessageParts([Buffer.concat([k.head, k.payload])], k.key, k.cipher, 7n, k.nonce));
      const payload = Buffer.from(k.payload);
      const parts = Buffer.concat(encryptMessageParts([k.head, payload], k.key, k.cipher, 7n, k.nonce, { inPlaceFrom: 1 }));
      return { whole: whole.toString('hex'), parts: parts.toString('hex') };
    });
    for (const [i, k] of cases.entries()) {
      expect(here[i]!.parts).toBe(here[i]!.whole);
      const plain = decryptMessage(Buffer.from(here[i]!.whole, 'hex'), k.key, k.cipher);
      expect(plain?.equals(Buffer.concat([k.head, k.payload]))).toBe(true);
      const inPlace = Buffer.from(here[i]!.whole, 'hex');
      expect(decryptMessage(inPlace, k.key, k.cipher, { inPlace: true })?.equals(Buffer.concat([k.head, k.payload]))).toBe(true);
      const bad = Buffer.from(here[i]!.whole, 'hex');
      bad[bad.length - 1]! ^= 1;
      expect(decryptMessage(bad, k.key, k.cipher)).toBeUndefined();
    }
    const script = `
      const { encryptMessageParts, decryptMessage } = await import(${JSON.stringify(new URL('../../protocols/smb/crypto.ts', import.meta.url).href)});
      const { smbNative } = await import(${JSON.stringify(new URL('../../protocols/smb/native.ts', import.meta.url).href)});
      const inp = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
      const out = inp.cases.map((k) => {
        const key = Buffer.from(k.key, 'hex'), nonce = Buffer.from(k.nonce, 'hex'), head = Buffer.from(k.head, 'hex'), payload = Buffer.from(k.payload, 'hex');
        const whole = Buffer.concat(encryptMessageParts([Buffer.concat([head, payload])], key, k.cipher, 7n, nonce)).toString('hex');
        const theirs = decryptMessage(Buffer.from(k.here, 'hex'), key, k.cipher);
        return { whole, opened: theirs !== undefined && theirs.equals(Buffer.concat([head, payload])) };
      });
      console.log(JSON.stringify({ native: smbNative() !== undefined, out }));`;
    const input = JSON.stringify({ cases: cases.map((k, i) => ({ cipher: k.cipher, key: k.key.toString('hex'), nonce: k.nonce.toString('hex'), head: k.head.toString('hex'), payload: k.payload.toString('hex'), here: here[i]!.whole })) });
    const r = spawnSync(process.execPath, ['--input-type=commonjs', '-e', `(async () => {${script}})()`], { input, env: { ...process.env, SMB_ADDON_PATH: '' }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout) as { native: boolean; out: { whole: string; opened: boolean }[] };
    expect(res.native).toBe(false);
    for (const [i, o] of res.out.entries()) {
      expect(o.whole === here[i]!.whole).toBe(true);
      expect(o.opened).toBe(true);
    }
  });
});
