/**
 * The shares NFS exposes (those whose `protocols` include `nfs`, or name none) and what NFS needs
 * of each beyond the session: a stable 8-byte key for file handles, a constant fsid, case
 * sensitivity. The pseudo-root (`mount host:/`) lists them; its own fsid and fileid are fixed.
 *
 * The key is a hash of the share's name (lower-cased, as the session manager keys shares), so a
 * handle keeps naming its share across restarts and config reorderings; renaming a share makes
 * its old handles STALE, as it should.
 *
 * Client restrictions (`shares[].nfs.clients`, like an /etc/exports line): a list of address or
 * CIDR matches, each rw or ro; the first entry that matches the connection's address decides, and
 * an address no entry matches may not use the export (NFS4ERR_ACCESS entering it: PUTFH of one of
 * its handles, LOOKUP from the pseudo-root, SECINFO of its name; absent from the pseudo-root's
 * listing). ro makes every change NFS4ERR_ROFS for that client, whatever the ACL grants — the
 * ACL still decides everything else. An entry may also name its own `squash` (none|root|all) and
 * `anonUid`/`anonGid` for those clients in this export, as root_squash/no_root_squash/all_squash
 * and anonuid/anongid on an exports line (the dispatcher maps the credential again when the
 * current filehandle enters such an export). An
 * export without the list admits every client, rw, with the server's squashing, and costs nothing
 * per call. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match as IPv4.
 */
import { createHash } from 'node:crypto';
import { BlockList } from 'node:net';
import { parseClientMatch, type PorticoConfig } from '../../../src/config/schema.ts';
import type { Mapping } from './principals.ts';

/** What a client may do in an export. */
export type ClientAccess = 'rw' | 'ro' | 'none';

interface ClientRule {
  /** undefined = every address. */
  list: BlockList | undefined;
  access: 'rw' | 'ro';
  /** These clients' own squash / anonUid / anonGid here (undefined: the server's, protocols.nfs.*). */
  mapping: Mapping | undefined;
}

export interface NfsExport {
  name: string;
  /** 8 bytes, stable for the share's name. */
  key: Buffer;
  keyHex: string;
  /** fsid4.major: the key as a number (63 bits), minor 1: constant per share. */
  fsidMajor: bigint;
  caseInsensitive: boolean;
  readOnly: boolean;
  /** Largest READ and WRITE (maxread/maxwrite). */
  maxRead: number;
  maxWrite: number;
  /** `shares[].nfs.clients`, in order; undefined = every client, rw. */
  clients: ClientRule[] | undefined;
}

type ClientInput = { match: string; access?: 'rw' | 'ro' | undefined } & Mapping;

function ruleOf(c: ClientInput): ClientRule {
  const m = parseClientMatch(c.match);
  if (!m) throw new Error(`invalid NFS client match ${JSON.stringify(c.match)}`);
  let list: BlockList | undefined;
  if (m.kind === 'net') {
    list = new BlockList();
    list.addSubnet(m.address, m.prefix, m.family);
  }
  const own = c.squash !== undefined || c.anonUid !== undefined || c.anonGid !== undefined;
  return { list, access: c.access ?? 'rw', mapping: own ? { squash: c.squash, anonUid: c.anonUid, anonGid: c.anonGid } : undefined };
}

/** A connection's address as the rules see it: IPv4-mapped IPv6 as IPv4. */
function plainAddress(a: string): { address: string; family: 'ipv4' | 'ipv6' } {
  if (a.startsWith('::ffff:') && a.includes('.')) return { address: a.slice(7), family: 'ipv4' };
  return { address: a, family: a.includes(':') ? 'ipv6' : 'ipv4' };
}

/** The first rule matching `address` (undefined: none matches, or the export has no list). */
export function clientRule(exp: NfsExport, address: string): ClientRule | undefined {
  if (!exp.clients) return undefined;
  const a = plainAddress(address);
  for (const r of exp.clients) {
    if (!r.list || r.list.check(a.address, a.family)) return r;
  }
  return undefined;
}

/** The first rule matching `address` decides; no match: none. */
export function clientAccess(exp: NfsExport, address: string): ClientAccess {
  if (!exp.clients) return 'rw';
  return clientRule(exp, address)?.access ?? 'none';
}

type ShareInput = {
  name: string;
  protocols?: string[] | undefined;
  caseSensitive?: boolean | undefined;
  readOnly?: boolean | undefined;
  nfs?: { clients?: ClientInput[] | undefined } | undefined;
};

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

  /** Largest READ and WRITE of every export (the pseudo-root's maxread/maxwrite). */
  readonly maxRead: number;
  readonly maxWrite: number;

  constructor(shares: readonly ShareInput[], io: { maxRead: number; maxWrite: number } = { maxRead: 1024 * 1024, maxWrite: 1024 * 1024 }) {
    this.maxRead = io.maxRead;
    this.maxWrite = io.maxWrite;
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
        maxRead: io.maxRead,
        maxWrite: io.maxWrite,
        clients: s.nfs?.clients?.map(ruleOf),
      };
      this.byName.set(s.name.toLowerCase(), e);
      this.byKey.set(e.keyHex, e);
    }
    const h = createHash('sha256');
    for (const n of [...this.byName.keys()].sort()) h.update(`${n}\0`);
    this.pseudoChange = h.digest().readBigUInt64BE(0) >> 1n;
  }

  static fromConfig(config: PorticoConfig, io?: { maxRead: number; maxWrite: number }): NfsExports {
    return new NfsExports(config.shares as unknown as ShareInput[], io);
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
