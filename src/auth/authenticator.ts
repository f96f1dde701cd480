/**
 * The authentication contract between the protocols and the user database.
 *
 * Protocols never see password hashes or user rows: HTTP Basic calls `authenticate`, SMB runs NTLMv2
 * itself with `ntHash` (the server challenge/response math belongs to the SMB layer) and reports the
 * outcome with `recordResult`, NFS AUTH_SYS maps numeric ids with `principalForUid`. Every password
 * attempt, whatever the protocol, goes through the same throttle.
 */

import { VfsError } from '../vfs/errors.ts';

export interface Principal {
  user: string;
  uid: number;
  gid: number;
  groups: string[];
  guest: boolean;
  /**
   * Epoch ms after which a protocol must not reuse this principal from its own login cache (a
   * directory login is only vouched for until its cache entry expires: src/auth/ldap-authenticator.ts).
   * Absent: no limit beyond the protocol's own TTL and `generation()`.
   */
  validUntil?: number;
}

export interface AuthContext {
  protocol: string;
  clientAddress: string;
}

export interface Authenticator {
  /** Password login (HTTP Basic, etc.). Throws VfsError('EAUTH') on bad credentials, VfsError('ETHROTTLED') when throttled. */
  authenticate(user: string, password: string, ctx: AuthContext): Promise<Principal>;
  /** The NT hash (MD4 of UTF-16LE password) for NTLMv2 verification by the SMB layer; undefined when the user is unknown/disabled. */
  ntHash(user: string): Promise<Buffer | undefined>;
  /** For NTLM: the SMB layer reports the outcome so throttling covers it too. */
  recordResult(user: string, ctx: AuthContext, ok: boolean): void;
  /** Checked before an NTLM attempt. Throws ETHROTTLED. */
  checkThrottle(user: string, ctx: AuthContext): void;
  principalFor(user: string): Promise<Principal | undefined>;
  /** NFS AUTH_SYS mapping. */
  principalForUid(uid: number): Promise<Principal | undefined>;
  guest(): Principal;
  /**
   * Optional: a value that changes whenever any user may have changed (added, deleted, disabled,
   * password or groups changed), in this process or another one. Protocols that remember
   * successful logins (WebDAV Basic) use it to forget them at once, without reading the user on
   * every request. Absent: such caches must re-read the user (`principalFor`) on every hit.
   */
  generation?(): number;
}

/** uid/gid of the guest principal: the traditional "nobody" (65534 on Linux and in NFS anonymous mapping). */
export const GUEST_ID = 65534;
export const GUEST_USER = 'guest';

export function guestPrincipal(): Principal {
  return { user: GUEST_USER, uid: GUEST_ID, gid: GUEST_ID, groups: [], guest: true };
}

/**
 * For in-process callers that hand their principals to sessions directly (tests, benchmarks,
 * embedding): every password or NTLM login is refused, and nobody maps by uid.
 */
export const refuseAllLogins: Authenticator = {
  authenticate: async () => {
    throw new VfsError('EAUTH');
  },
  ntHash: async () => undefined,
  recordResult: () => undefined,
  checkThrottle: () => undefined,
  principalFor: async () => undefined,
  principalForUid: async () => undefined,
  guest: guestPrincipal,
};
