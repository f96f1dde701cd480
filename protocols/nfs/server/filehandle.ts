/**
 * NFS file handles (nfs_fh4, RFC 8881 §4): opaque to clients, persistent (fh_expire_type
 * PERSISTENT) — nfs-ganesha's rule, not go-nfs's volatile LRU handles. A handle names a share and
 * one of its persistent file ids, so it finds its file after a restart from nothing and after any
 * rename; a file deleted (or replaced outside Portico) has a new id and its old handle answers
 * NFS4ERR_STALE from the core (ESTALE).
 *
 * Layout, 28 bytes:
 *   0  'P' 'n'   magic
 *   2  1         version
 *   3  kind      0 pseudo-root, 1 file in a share
 *   4  8 bytes   share key (exports.ts: hash of the share's name)
 *  12  8 bytes   file id (big-endian)
 *  20  8 bytes   check value: HMAC-SHA256(server secret, bytes 0..19), truncated
 *
 * The check value stops a client from forging handles for ids it was never given (an id is
 * guessable; the id → path walk would otherwise answer for any file of the share, and the ACL is
 * checked on the path anyway — the HMAC is defence in depth and makes garbage cheap to refuse).
 * Bytes that do not parse, or whose check fails, are NFS4ERR_BADHANDLE; a well-formed handle of a
 * share that is no longer exported, NFS4ERR_STALE.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { NFS4ERR } from '../nfs4-types.ts';
import type { NfsExport, NfsExports } from './exports.ts';

export type Fh = { kind: 'pseudo'; bytes: Buffer } | { kind: 'file'; exp: NfsExport; share: string; id: bigint; bytes: Buffer };

const LEN = 28;
/** Handles made or checked recently: a PUTFH of one of them needs no HMAC (a fifth of a GETATTR's time). */
const KNOWN_MAX = 16_384;
const MAGIC0 = 0x50;
const MAGIC1 = 0x6e;
const VERSION = 1;

/** A Map key from 30 bits of a handle's check value (a small integer: V8 hashes it inline). */
const knownKey = (bytes: Buffer): number => bytes.readUInt32BE(20) >>> 2;
/** Ids are counters: as numbers they are small-integer keys (a BigInt key is hashed out of line). */
const idKey = (id: bigint): number | bigint => (id <= MAX_SAFE_ID ? Number(id) : id);
const MAX_SAFE_ID = BigInt(Number.MAX_SAFE_INTEGER);

export class FhCodec {
  private readonly key: KeyObject;
  private readonly exports: NfsExports;
  /**
   * Handles made or checked, by 30 bits of their check value (an HMAC: as good as random); a hit
   * counts only if every byte matches, and a collision just means the HMAC is checked. Keyed by a
   * string of the bytes before: making that string and hashing it were most of a PUTFH.
   */
  private readonly known = new Map<number, Fh>();
  /** Handles made recently, per export and id (the same bounds as `known`). */
  private readonly made = new WeakMap<NfsExport, Map<number | bigint, Fh>>();
  readonly pseudo: Fh;

  constructor(secret: string | Buffer, exports: NfsExports) {
    this.key = createSecretKey(createHmac('sha256', secret).update('portico-nfs-filehandle-v1').digest());
    this.exports = exports;
    this.pseudo = { kind: 'pseudo', bytes: this.make(0, Buffer.alloc(8), 0n) };
    this.remember(this.pseudo);
  }

  private make(kind: number, shareKey: Buffer, id: bigint): Buffer {
    const b = Buffer.alloc(LEN);
    b[0] = MAGIC0;
    b[1] = MAGIC1;
    b[2] = VERSION;
    b[3] = kind;
    shareKey.copy(b, 4, 0, 8);
    b.writeBigUInt64BE(id, 12);
    this.mac(b).copy(b, 20, 0, 8);
    return b;
  }

  private mac(b: Buffer): Buffer {
    return createHmac('sha256', this.key).update(b.subarray(0, 20)).digest();
  }

  forFile(exp: NfsExport, id: bigint): Fh {
    // READDIR asks a handle for every entry of every page (and LOOKUP, OPEN one each): no HMAC for a known one.
    let ids = this.made.get(exp);
    if (!ids) this.made.set(exp, (ids = new Map()));
    const k = idKey(id);
    const hit = ids.get(k);
    if (hit) return hit;
    const fh: Fh = { kind: 'file', exp, share: exp.name, id, bytes: this.make(1, exp.key, id) };
    if (ids.size >= KNOWN_MAX) ids.delete(ids.keys().next().value as number | bigint);
    ids.set(k, fh);
    this.remember(fh);
    return fh;
  }

  private remember(fh: Fh): void {
    const k = knownKey(fh.bytes);
    const prev = this.known.get(k);
    if (prev === fh) return;
    if (prev === undefined && this.known.size >= KNOWN_MAX) this.known.delete(this.known.keys().next().value as number);
    this.known.set(k, fh);
  }

  /** The handle a client sent, or the status to answer. */
  decode(bytes: Buffer): Fh | { status: number } {
    if (bytes.length === LEN) {
      const hit = this.known.get(knownKey(bytes));
      if (hit !== undefined && hit.bytes.equals(bytes)) return hit;
    }
    if (bytes.length !== LEN || bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1 || bytes[2] !== VERSION) return { status: NFS4ERR.BADHANDLE };
    if (!timingSafeEqual(this.mac(bytes).subarray(0, 8), bytes.subarray(20, 28))) return { status: NFS4ERR.BADHANDLE };
    const kind = bytes[3];
    if (kind === 0) return this.pseudo;
    if (kind !== 1) return { status: NFS4ERR.BADHANDLE };
    const exp = this.exports.byShareKey(bytes.subarray(4, 12));
    if (!exp) return { status: NFS4ERR.STALE };
    const fh: Fh = { kind: 'file', exp, share: exp.name, id: bytes.readBigUInt64BE(12), bytes: Buffer.from(bytes) };
    this.remember(fh);
    return fh;
  }
}
