/**
 * What TREE_CONNECT decides beyond the ACL: which share a name reaches (and the Windows statuses
 * for one that exists but is not for this caller), per-share encryption, and where guests may go.
 *
 * Per-share encryption (MS-SMB2 3.3.5.7, Share.EncryptData / RejectUnencryptedAccess):
 * `shares[].smb.encrypt` — absent means `protocols.smb.encrypt` — is `off`, `desired` or
 * `required`. On a desired or required share a session that can encrypt (a 3.x dialect with a
 * cipher, a session key) gets SMB2_SHAREFLAG_ENCRYPT_DATA and encrypts every request on the tree;
 * on a required share an unencrypted request on the tree is ACCESS_DENIED unexecuted (server.ts),
 * and a session that cannot encrypt (2.x, 3.x without a cipher, a null session) is refused at
 * TREE_CONNECT with ACCESS_DENIED. A desired share serves such sessions in clear. A share's `off`
 * never weakens the global setting, which applies to the whole session.
 *
 * Guests: a null session (anonymous NTLM, smbclient -N) is the guest principal, allowed only
 * while some SMB share has `guest: read` (the same share key WebDAV's anonymous reads use), and
 * the ACL gives it read only there.
 */
import type { SessionManager } from '../../../src/session/session-manager.ts';
import type { Principal } from '../../../src/auth/authenticator.ts';
import { STATUS } from '../status.ts';
import { ShareFlags } from '../messages/tree-connect.ts';
import type { Conn, SmbServer, SmbSession } from './server.ts';

export type EncryptMode = 'off' | 'desired' | 'required';

/** `shares[].smb.encrypt` by lower-cased share name, from the parsed config (absent keys left out). */
export function shareEncryptModes(shares: readonly { name: string; smb?: { encrypt?: EncryptMode | undefined } | undefined }[]): Map<string, EncryptMode> {
  const m = new Map<string, EncryptMode>();
  for (const s of shares) if (s.smb?.encrypt) m.set(s.name.toLowerCase(), s.smb.encrypt);
  return m;
}

/** Whether anonymous (null) sessions may be made at all: some SMB share lets the guest read. */
export function guestSharesExist(sessions: SessionManager): boolean {
  return sessions.sharesFor(sessions.authenticator.guest(), 'smb').length > 0;
}

export type TreeDecision = { status: number } | { share: string; shareFlags: number; encryptRequired: boolean };

export function treeConnectDecision(srv: SmbServer, conn: Conn, sess: SmbSession, principal: Principal, name: string): TreeDecision {
  const share = srv.sessions.sharesFor(principal, 'smb').find((s) => s.toLowerCase() === name.toLowerCase());
  if (!share) {
    // Windows: a share that exists but is not this caller's (a guest at a non-guest share) is
    // ACCESS_DENIED; only an unknown name is BAD_NETWORK_NAME.
    try {
      srv.sessions.acl(name, 'smb');
      return { status: STATUS.ACCESS_DENIED };
    } catch {
      return { status: STATUS.BAD_NETWORK_NAME };
    }
  }
  const mode = srv.shareEncrypt.get(share.toLowerCase()) ?? srv.encrypt;
  if (mode === 'off') return { share, shareFlags: 0, encryptRequired: false };
  const canEncrypt = conn.cipher !== 0 && sess.keys !== undefined;
  if (!canEncrypt) return mode === 'required' ? { status: STATUS.ACCESS_DENIED } : { share, shareFlags: 0, encryptRequired: false };
  return { share, shareFlags: ShareFlags.ENCRYPT_DATA, encryptRequired: mode === 'required' };
}
