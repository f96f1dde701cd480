/**
 * The shares NFS exposes (those whose `protocols` include `nfs`, or name none) and what NFS needs
 * of each beyond the session: a stable 8-byte key for file handles, a constant fsid, case
 * sensitivity. The pseudo-root (`mount host:/`) lists them; its own fsid and fileid are fixed.
 *
 * The key is a hash of the share's name (lower-cased, as the session manager keys shares), so a
 * handle keeps naming its share across restarts and config reorderings; renaming a share makes
 * its old handles STALE, as it should.
 */
import { createHash } from 'node:crypto';
import type { PorticoConfig } from '../../../src/config/schema.ts';

export interface NfsExport {
  name: string;
  /** 8 bytes, stable for the share's name. */
  key: Buffer;
  keyHex: string;
  /** fsid4.major: the key as a number (63 bits), minor 1: constant per share. */
  fsidMajor: bigint;
  caseInsensitive: boolean;
  readOnly: boolean;
}

export const PSEUDO_FSID = { major: 0x504f5254n /* 'PORT' */, minor: 0n } as const;
export const PSEUDO_FILEID = 1n;

export function shareKey(name: string): Buffer {
  return createHash('sha256').update(`portico-nfs-share:${name.toLowerCase()}`).digest().subarray(0, 8);
}

export class NfsExports {
  private readonly byName = new Map<string, NfsExport>();
  private readonly byKey = new Map<string, NfsExport>();
  /** The pseudo-root's change attribute: a function of the export list. */
  readonly pseudoChange: bigint;

  constructor(shares: readonly { name: string; protocols?: string[] | undefined; caseSensitive?: boolean | undefined; readOnly?: boolean | undefined }[]) {
    for (const s of shares) {
      if (s.protocols && !s.protocols.includes('nfs')) continue;
      const key = shareKey(s.name);
      const e: NfsExport = {
        name: s.name,
        key,
        keyHex: key.toString('hex'),
        fsidMajor: key.readBigUInt64BE(0) >> 1n,
        caseInsensitive: s.caseSensitive === false,
        readOnly: s.readOnly === true,
      };
      this.byName.set(s.name.toLowerCase(), e);
      this.byKey.set(e.keyHex, e);
    }
    const h = createHash('sha256');
    for (const n of [...this.byName.keys()].sort()) h.update(`${n}\0`);
    this.pseudoChange = h.digest().readBigUInt64BE(0) >> 1n;
  }

  static fromConfig(config: PorticoConfig): NfsExports {
    return new NfsExports(config.shares as unknown as { name: string; protocols?: string[]; caseSensitive?: boolean; readOnly?: boolean }[]);
  }

  byShareName(name: string): NfsExport | undefined {
    return this.byName.get(name.toLowerCase());
  }

  byShareKey(key: Buffer): NfsExport | undefined {
    return this.byKey.get(key.toString('hex'));
  }

  all(): NfsExport[] {
    return [...this.byName.values()];
  }
}
