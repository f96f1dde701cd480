/**
 * MD4 (RFC 1320), needed only for the NT hash that NTLM (SMB) authentication is built on
 * ([MS-NLMP] §3.3.1: NTOWFv1 = MD4(UNICODE(password))).
 *
 * Written here because OpenSSL 3 (Node 17+) moved MD4 to the legacy provider, which Node does not
 * load, so `createHash('md4')` throws. MD4 is broken as a general hash; it is used for nothing else.
 */

const S1 = [3, 7, 11, 19];
const S2 = [3, 5, 9, 13];
const S3 = [3, 9, 11, 15];
// Round 3 word order (RFC 1320 §3.4).
const R3 = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];

const rotl = (x: number, s: number): number => (x << s) | (x >>> (32 - s));

export function md4(data: Uint8Array): Buffer {
  // Padding (§3.1, §3.2): 0x80, zeros to 56 mod 64, then the bit length as 64-bit little-endian.
  const bitLen = BigInt(data.length) * 8n;
  const padded = Buffer.alloc((((data.length + 8) >> 6) + 1) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  padded.writeBigUInt64LE(bitLen & 0xffffffffffffffffn, padded.length - 8);

  let a = 0x67452301;
  let b = 0xefcdab89;
  let c = 0x98badcfe;
  let d = 0x10325476;
  const x = new Array<number>(16);

  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readInt32LE(off + i * 4);
    const aa = a;
    const bb = b;
    const cc = c;
    const dd = d;

    // Round 1: F(X,Y,Z) = XY v not(X) Z
    for (let i = 0; i < 16; i++) {
      const t = (a + ((b & c) | (~b & d)) + x[i]!) | 0;
      a = d;
      d = c;
      c = b;
      b = rotl(t, S1[i & 3]!);
    }
    // Round 2: G(X,Y,Z) = XY v XZ v YZ, constant sqrt(2)
    for (let i = 0; i < 16; i++) {
      const k = ((i & 3) << 2) | (i >> 2);
      const t = (a + ((b & c) | (b & d) | (c & d)) + x[k]! + 0x5a827999) | 0;
      a = d;
      d = c;
      c = b;
      b = rotl(t, S2[i & 3]!);
    }
    // Round 3: H(X,Y,Z) = X xor Y xor Z, constant sqrt(3)
    for (let i = 0; i < 16; i++) {
      const t = (a + (b ^ c ^ d) + x[R3[i]!]! + 0x6ed9eba1) | 0;
      a = d;
      d = c;
      c = b;
      b = rotl(t, S3[i & 3]!);
    }

    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }

  const out = Buffer.alloc(16);
  out.writeInt32LE(a, 0);
  out.writeInt32LE(b, 4);
  out.writeInt32LE(c, 8);
  out.writeInt32LE(d, 12);
  return out;
}

/** NT hash: MD4 of the UTF-16LE password ([MS-NLMP] §3.3.1 NTOWFv1, reused by NTOWFv2). */
export function ntHash(password: string): Buffer {
  return md4(Buffer.from(password, 'utf16le'));
}
