/**
 * AUTH_SYS credentials → Portico principals, per call (nfs-ganesha's op_ctx->creds): each
 * COMPOUND runs as the principal of its credential through `Session.as(principal)`, so rights and
 * audit entries are that user's while opens and locks stay the NFSv4 client's.
 *
 * Decision: a uid no Portico user carries is squashed to the anonymous principal (a guest with
 * `anonUid`/`anonGid`), never refused: NFS clients send whatever uid the local user has, and a
 * refusal per call would show as EACCES anyway — the anonymous principal gets exactly what a
 * guest gets (read on `guest: read` shares, nothing elsewhere), so nothing is granted by mistake.
 * `squash`: `root` (default, as exports' root_squash) also maps uid 0 to the anonymous principal,
 * `all` maps every uid, `none` maps uid 0 to the user whose uid is 0, when one exists.
 * AUTH_NONE (only when allowed) is the anonymous principal.
 */
import type { Authenticator, Principal } from '../../../src/auth/authenticator.ts';
import { AUTH_FLAVOR, type Credential } from '../rpc.ts';

export type Squash = 'none' | 'root' | 'all';
/** An export's client entry's own mapping (shares[].nfs.clients[]); what it leaves out is the server's. */
export interface Mapping {
  squash?: Squash | undefined;
  anonUid?: number | undefined;
  anonGid?: number | undefined;
}

const CACHE_MS = 2000;
const MAX_CACHED = 4096;

export class PrincipalMap {
  private readonly auth: Authenticator;
  private readonly squash: Squash;
  readonly anonymous: Principal;
  /** uid → the user carrying it (undefined: nobody, so the anonymous principal), for 2 s. */
  private readonly cache = new Map<number, { p: Principal | undefined; at: number }>();
  /** Anonymous principals with other ids (client entries' anonUid/anonGid), one object each. */
  private readonly anons = new Map<string, Principal>();

  constructor(auth: Authenticator, o: { squash: Squash; anonUid: number; anonGid: number }) {
    this.auth = auth;
    this.squash = o.squash;
    this.anonymous = { ...auth.guest(), uid: o.anonUid, gid: o.anonGid };
  }

  /**
   * The principal of a credential; `m` (an export's client entry) overrides the server's mapping.
   * Answered at once (no promise) when the uid's user is cached: every COMPOUND asks.
   */
  of(cred: Credential, m?: Mapping): Principal | Promise<Principal> {
    const anonymous = m && (m.anonUid !== undefined || m.anonGid !== undefined) ? this.anonymousAs(m.anonUid ?? this.anonymous.uid, m.anonGid ?? this.anonymous.gid) : this.anonymous;
    if (cred.flavor !== AUTH_FLAVOR.SYS) return anonymous;
    const uid = cred.sys.uid;
    const squash = m?.squash ?? this.squash;
    if (squash === 'all' || (uid === 0 && squash === 'root')) return anonymous;
    const now = Date.now();
    const hit = this.cache.get(uid);
    if (hit && now - hit.at < CACHE_MS) return hit.p ?? anonymous;
    return this.auth.principalForUid(uid).then((p) => {
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      this.cache.set(uid, { p, at: now });
      return p ?? anonymous;
    });
  }

  private anonymousAs(uid: number, gid: number): Principal {
    if (uid === this.anonymous.uid && gid === this.anonymous.gid) return this.anonymous;
    const k = `${uid}:${gid}`;
    let p = this.anons.get(k);
    if (!p) this.anons.set(k, (p = { ...this.anonymous, uid, gid }));
    return p;
  }
}
