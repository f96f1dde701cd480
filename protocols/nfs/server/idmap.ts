/**
 * owner and owner_group strings (RFC 7530 §5.9, RFC 8881 §5.9): numeric ("1000") by default, or
 * "name@domain" when `protocols.nfs.idmapDomain` is set.
 *
 * Decision: numeric strings by default. The Linux client sends and accepts them with AUTH_SYS when
 * idmapping is off (nfs4_disable_idmapping, its default), and accepts a numeric string from the
 * server even with idmapping on, so a gateway needs no idmap domain to be mounted and no domain to
 * agree on. With a domain, owners are the Portico user carrying the uid ("alice@example.com"),
 * numeric when no user does; a group is the user whose uid and gid are both the gid (a user
 * private group: Portico's named groups have no gids), numeric otherwise. SETATTR (and createattrs)
 * take both forms: a number always; "name@domain" only with the configured domain (compared
 * without case) and a user of that name (for a group: such a user private group); anything else
 * is NFS4ERR_BADOWNER. Lookups go through the Authenticator (principalForUid / principalFor),
 * cached 2 s and dropped when its generation changes (a user added, deleted or changed).
 */
import type { Authenticator, Principal } from '../../../src/auth/authenticator.ts';
import type { AttrValues } from '../fattr4.ts';
import { NFS4ERR } from '../nfs4-types.ts';

const CACHE_MS = 2000;
const MAX_CACHED = 4096;
const NUMERIC = /^\d{1,10}$/;
const BADOWNER = NFS4ERR.BADOWNER;

export class IdMap {
  readonly domain: string | undefined;
  private readonly auth: Authenticator;
  private readonly byId = new Map<number, { p: Principal | undefined; at: number }>();
  private readonly byName = new Map<string, { p: Principal | undefined; at: number }>();
  private generation: number | undefined;

  constructor(auth: Authenticator, domain?: string) {
    this.auth = auth;
    this.domain = domain?.toLowerCase();
  }

  /** Sets owner and owner_group of attribute values to the names of uid and gid (a domain is set). */
  async name(v: AttrValues, uid: number, gid: number): Promise<void> {
    if (v.owner !== undefined) v.owner = await this.owner(uid);
    if (v.ownerGroup !== undefined) v.ownerGroup = await this.group(gid);
  }

  /**
   * Owner strings a client sent (SETATTR, createattrs) as the numeric strings the rest reads:
   * NFS4ERR_BADOWNER (the status) for a name that maps to nobody, else undefined.
   */
  async numeric(v: AttrValues): Promise<number | undefined> {
    if (v.owner !== undefined) {
      const uid = await this.uidOf(v.owner);
      if (uid === undefined) return BADOWNER;
      v.owner = String(uid);
    }
    if (v.ownerGroup !== undefined) {
      const gid = await this.gidOf(v.ownerGroup);
      if (gid === undefined) return BADOWNER;
      v.ownerGroup = String(gid);
    }
    return undefined;
  }

  /** The owner string of a uid. */
  async owner(uid: number): Promise<string> {
    if (this.domain === undefined) return String(uid);
    const p = await this.principalOfId(uid);
    return p ? `${p.user}@${this.domain}` : String(uid);
  }

  /** The owner_group string of a gid. */
  async group(gid: number): Promise<string> {
    if (this.domain === undefined) return String(gid);
    const p = await this.principalOfId(gid);
    return p && p.uid === gid && p.gid === gid ? `${p.user}@${this.domain}` : String(gid);
  }

  /** The uid an owner string names; undefined: BADOWNER. */
  async uidOf(s: string): Promise<number | undefined> {
    const n = numeric(s);
    if (n !== undefined) return n;
    const p = await this.named(s);
    return p?.uid;
  }

  /** The gid an owner_group string names; undefined: BADOWNER. */
  async gidOf(s: string): Promise<number | undefined> {
    const n = numeric(s);
    if (n !== undefined) return n;
    const p = await this.named(s);
    return p && p.uid === p.gid ? p.gid : undefined;
  }

  private async named(s: string): Promise<Principal | undefined> {
    if (this.domain === undefined) return undefined;
    const at = s.lastIndexOf('@');
    if (at <= 0 || s.slice(at + 1).toLowerCase() !== this.domain) return undefined;
    const name = s.slice(0, at);
    this.checkGeneration();
    const now = Date.now();
    const hit = this.byName.get(name);
    if (hit && now - hit.at < CACHE_MS) return hit.p;
    const p = await this.auth.principalFor(name);
    put(this.byName, name, { p, at: now });
    return p;
  }

  private async principalOfId(id: number): Promise<Principal | undefined> {
    this.checkGeneration();
    const now = Date.now();
    const hit = this.byId.get(id);
    if (hit && now - hit.at < CACHE_MS) return hit.p;
    const p = await this.auth.principalForUid(id);
    put(this.byId, id, { p, at: now });
    return p;
  }

  private checkGeneration(): void {
    const g = this.auth.generation?.();
    if (g === this.generation) return;
    this.generation = g;
    this.byId.clear();
    this.byName.clear();
  }
}

function numeric(s: string): number | undefined {
  if (!NUMERIC.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function put<K, V>(m: Map<K, V>, k: K, v: V): void {
  if (m.size >= MAX_CACHED) m.clear();
  m.set(k, v);
}
