/**
 * Loading the SMB front-end's optional native helper (protocols/smb/native, README there): AES-GMAC
 * signatures on one OpenSSL GCM context per signing key, and the seal worker's AES-GCM of a large
 * message where it lies. Without it both go through node:crypto as before: the same bytes, more CPU.
 */
import { loadAddon, type AddonLoad } from '../../src/util/native-addon.ts';

/** One GCM context holding a signing key's schedule; each tag() sets a new nonce. */
export interface NativeGmac {
  /** The GMAC tag of the parts' concatenation (the AAD of a GCM with no plaintext), written to out[offset..offset+16). */
  tag(nonce: Buffer, parts: readonly Buffer[], out: Buffer, offset: number): void;
  /**
   * Signs an SMB2 message (its header first; flags as sent) in one call: the nonce from its own
   * header, the signature field read as zeros, `payload` (a READ's, sent as a piece of its own)
   * after it; the tag written into the signature field. Absent from a helper built before it.
   */
  sign?(message: Buffer, payload?: Buffer): void;
  /** Whether a received SMB2 message's signature field holds its tag (constant time). Absent from an older build. */
  verify?(message: Buffer): boolean;
}

/** One AES-GCM context holding a 128- or 256-bit key's schedule; each call sets a new 12-byte nonce. */
export interface NativeGcm {
  /** head encrypted into headOut (as long), data encrypted where it lies, the tag into tagOut (16 bytes). */
  seal(nonce: Buffer, aad: Buffer, head: Buffer, headOut: Buffer, data: Buffer, tagOut: Buffer): void;
  /** data decrypted where it lies; whether the tag matched (when not, data is garbage). */
  open(nonce: Buffer, aad: Buffer, data: Buffer, tag: Buffer): boolean;
}

export interface SmbNative {
  Gmac: new (key: Buffer) => NativeGmac;
  Gcm: new (key: Buffer) => NativeGcm;
}

/**
 * The helper's GCM context of a key, made once per key Buffer (session keys are never modified
 * after derivation; a seal job's key is a copy per job, so the worker keeps its own map); `null`
 * for a key it refused. Undefined without the helper.
 */
const gcmContexts = new WeakMap<Uint8Array, NativeGcm | null>();
export function nativeGcmOf(key: Buffer): NativeGcm | undefined {
  return nativeContextOf(gcmContexts, key, (native) => new native.Gcm(key));
}

/**
 * The helper's context for `key` from `contexts`, made by `make` at the key's first use (`null`
 * kept for a key the helper refused); undefined without the helper or for a refused key. One
 * piece for every per-key context (GCM here, GMAC in crypto.ts).
 */
export function nativeContextOf<T>(contexts: WeakMap<Uint8Array, T | null>, key: Uint8Array, make: (native: SmbNative) => T): T | undefined {
  let c = contexts.get(key);
  if (c === undefined) {
    const native = smbNative();
    if (!native) return undefined;
    try {
      c = make(native);
    } catch {
      c = null;
    }
    contexts.set(key, c);
  }
  return c ?? undefined;
}

/** The command that builds it. */
export const SMB_NATIVE_ENABLE = 'npm run build:smb (needs a C++ compiler)';

/**
 * The build's output, or SMB_ADDON_PATH (an addon built elsewhere; '' turns it off, as the tests do
 * to check the node:crypto path). Named like LOCAL_ADDON_PATH, outside PORTICO_* (configuration keys).
 */
const ADDON_PATH = process.env.SMB_ADDON_PATH ?? new URL('./native/build/Release/portico_smb.node', import.meta.url).pathname;

let loaded: AddonLoad<SmbNative> | undefined;

function load(): AddonLoad<SmbNative> {
  return (loaded ??= loadAddon<SmbNative>(ADDON_PATH, 'the SMB native helper', 'SMB_ADDON_PATH'));
}

export type SmbNativeAvailability = { available: true } | { available: false; reason: string; enable: string };

export function smbNativeAvailability(): SmbNativeAvailability {
  const l = load();
  return 'error' in l ? { available: false, reason: l.error, enable: SMB_NATIVE_ENABLE } : { available: true };
}

/** The helper's module, or undefined when it is not available. */
export function smbNative(): SmbNative | undefined {
  const l = load();
  return 'mod' in l ? l.mod : undefined;
}
