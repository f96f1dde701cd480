/**
 * Encryption at rest for the NT hashes of local users.
 *
 * Why: the NT hash (MD4 of the UTF-16LE password) is password-equivalent. NTLM proves knowledge of
 * the hash, not of the password, so anyone holding it can authenticate over SMB as that user
 * ("pass-the-hash") without ever cracking it. It therefore never sits in the metadata store in the
 * clear: it is stored only sealed with this box, the database file is mode 0600 (MetadataStore.open),
 * and the key lives apart from the database — `<stateDir>/secret.key` (mode 0600, directory 0700) by
 * default. In production keep the key on a different volume or in a secret store and pass it as
 * `auth.secretKey` through the environment (PORTICO_AUTH__SECRET_KEY), so a copy of the state volume
 * or of a backup of portico.db alone does not yield usable credentials.
 *
 * Format: 'v1:' + base64(iv[12] | tag[16] | ciphertext), AES-256-GCM with a key derived from the
 * secret by HKDF-SHA256. The caller binds each value to its row with `aad` (e.g. the user name), so a
 * sealed hash copied onto another user's row does not open.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VfsError } from '../vfs/errors.ts';

const VERSION = 'v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT = Buffer.from('portico secret-box salt v1');
const INFO = Buffer.from('portico secret-box aes-256-gcm v1');
export const SECRET_KEY_FILE = 'secret.key';

export class SecretBox {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length === 0) throw new VfsError('EINVAL', 'secret key is empty');
    this.key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), SALT, INFO, 32));
  }

  seal(plain: Uint8Array | string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain), cipher.final()]);
    return VERSION + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64');
  }

  /** Throws EIO when the value was altered, sealed with another key, or bound to another aad. */
  open(sealed: string, aad: string): Buffer {
    if (!sealed.startsWith(VERSION)) throw new VfsError('EIO', 'sealed value has an unknown format');
    const raw = Buffer.from(sealed.slice(VERSION.length), 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new VfsError('EIO', 'sealed value is truncated');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch (e) {
      throw new VfsError('EIO', 'sealed value failed authentication (tampered, or sealed with a different secret key)', { cause: e });
    }
  }
}

/**
 * The configured secret, or the one in `<stateDir>/secret.key`, created on first use (32 random
 * bytes as hex, mode 0600, in a 0700 directory).
 */
export function loadOrCreateSecret(stateDir: string, configured?: string | null): string {
  if (configured !== undefined && configured !== null && configured !== '') return configured;
  const file = join(stateDir, SECRET_KEY_FILE);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new VfsError('EIO', `cannot create state directory ${stateDir}: ${(e as Error).message}`, { cause: e });
  }
  const fresh = randomBytes(32).toString('hex');
  try {
    // 'wx': never overwrite a key another process created first; losing it would orphan every sealed hash.
    writeFileSync(file, fresh + '\n', { flag: 'wx', mode: 0o600 });
    // The mode passed to open() is filtered by the umask; 0600 is already the narrowest, but be explicit.
    chmodSync(file, 0o600);
    return fresh;
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') {
      throw new VfsError('EIO', `cannot create ${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new VfsError('EIO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new VfsError('EIO', `${file} does not hold a 64-digit hex key`);
  return text;
}
