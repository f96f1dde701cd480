/**
 * RC4, for NTLMSSP only: KEY_EXCH sends the exported session key RC4-encrypted under the key
 * exchange key (MS-NLMP 3.1.5.1.2), and the NTLM signature's checksum is RC4-sealed (3.4.4.2),
 * which the SPNEGO mechListMIC needs.
 *
 * Written here because OpenSSL 3 moved RC4 to the legacy provider, which Node 24 does not load
 * (`createCipheriv('rc4', ...)` throws "unsupported"); loading the legacy provider would be a
 * process-wide change for one protocol's handshake. RC4 is broken as a cipher and is used for
 * nothing else. The state is kept, because NTLM's sealing handle runs across messages.
 */
export class Rc4 {
  private s = new Uint8Array(256);
  private i = 0;
  private j = 0;

  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > 256) throw new RangeError('RC4 key must be 1..256 bytes');
    const s = this.s;
    for (let k = 0; k < 256; k++) s[k] = k;
    let j = 0;
    for (let k = 0; k < 256; k++) {
      j = (j + s[k]! + key[k % key.length]!) & 0xff;
      const t = s[k]!;
      s[k] = s[j]!;
      s[j] = t;
    }
  }

  /** Encrypts or decrypts (the same operation), continuing the key stream. */
  update(data: Uint8Array): Buffer {
    const s = this.s;
    const out = Buffer.alloc(data.length);
    let { i, j } = this;
    for (let k = 0; k < data.length; k++) {
      i = (i + 1) & 0xff;
      j = (j + s[i]!) & 0xff;
      const t = s[i]!;
      s[i] = s[j]!;
      s[j] = t;
      out[k] = data[k]! ^ s[(s[i]! + s[j]!) & 0xff]!;
    }
    this.i = i;
    this.j = j;
    return out;
  }
}

export function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  return new Rc4(key).update(data);
}
