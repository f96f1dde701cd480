/**
 * Security descriptors for QUERY_INFO / SET_INFO SMB2_0_INFO_SECURITY (MS-SMB2 3.3.5.20.3,
 * 3.3.5.21.3), derived from what Portico actually decides — the share's grants and path rules
 * through `Session.access` — and never stored.
 *
 * SIDs: Samba's Unix mapping, S-1-22-1-<uid> for a user and S-1-22-2-<gid> for a group (the
 * "Unix User" / "Unix Group" authorities Samba, and Windows clients talking to Samba, already
 * know). Stateless and stable: the same uid is the same SID on every Portico, across restarts and
 * state-directory loss, with nothing to persist or migrate; NFS and SMB name one owner the same
 * way. A domain SID + RID would only matter for a domain member, which Portico is not.
 *
 * The DACL states effective rights, not a copy of the config's rules (which have no SID for a
 * group name, and whose nearest-rule-wins order has no ACE equivalent): allow ACEs for the caller,
 * the file's owner (when a Portico user has its uid), Authenticated Users (what a user named by no
 * grant or rule gets: the `*` grants) and BUILTIN\Guests (what the guest gets: `guest: read`),
 * each with the mask of its `Session.access` — read → read & execute, write → modify. A user with
 * less than Authenticated Users (a rule denying them) gets a deny ACE for the difference first,
 * so evaluating the DACL the Windows way gives each named principal exactly Portico's answer.
 * WRITE_DAC / WRITE_OWNER are never granted: the descriptor cannot be changed (below).
 */
import type { Principal } from '../../../src/auth/authenticator.ts';
import type { Session, AccessRights } from '../../../src/session/session.ts';
import type { FileAttr } from '../../../src/vfs/types.ts';
import {
  ACL_REVISION, AceFlags, AceType, SdControl, SecurityInformation, decodeSecurityDescriptor, encodeSecurityDescriptor, sidString,
  type Ace, type SecurityDescriptor, type Sid,
} from '../messages/security-descriptor.ts';
import { tryDecode } from '../wire.ts';
import type { Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { Dialect } from '../messages/negotiate.ts';
import { encodeOutputResponse, type QueryInfoRequest, type SetInfoRequest } from '../messages/info.ts';
import { ErrorId, encodeErrorResponse, encodeRequiredSize, errorWithContexts } from '../messages/error.ts';
import { encodeSetInfoResponse } from '../messages/simple.ts';
import { ntStatusOf } from '../errors.ts';
import type { CommandResult } from './commands.ts';
import type { Conn, Open, SmbServer } from './server.ts';

export const SID = {
  EVERYONE: { authority: 1, subAuthorities: [0] },
  AUTHENTICATED_USERS: { authority: 5, subAuthorities: [11] },
  BUILTIN_GUESTS: { authority: 5, subAuthorities: [32, 546] },
} as const satisfies Record<string, Sid>;

export const userSid = (uid: number): Sid => ({ authority: 22, subAuthorities: [1, uid >>> 0] });
export const groupSid = (gid: number): Sid => ({ authority: 22, subAuthorities: [2, gid >>> 0] });

/** FILE_GENERIC_READ | FILE_GENERIC_EXECUTE ("Read & execute"). */
export const MASK_READ = 0x0012_00a9;
/** Read & execute | FILE_GENERIC_WRITE | DELETE ("Modify"): no WRITE_DAC, WRITE_OWNER, DELETE_CHILD. */
export const MASK_MODIFY = 0x0013_01bf;
/** Needed to query owner, group or DACL (MS-FSA 2.1.5.14). */
export const READ_CONTROL = 0x0002_0000;
export const WRITE_DAC = 0x0004_0000;
export const WRITE_OWNER = 0x0008_0000;
/** Needed for the SACL (MS-FSA 2.1.5.14). */
export const ACCESS_SYSTEM_SECURITY = 0x0100_0000;

export function maskOf(r: AccessRights): number {
  if (r.write && !r.readOnlyShare) return MASK_MODIFY;
  return r.read ? MASK_READ : 0;
}

/** A principal that no grant or rule names by user or group: what the `*` entries give. */
const anyUser: Principal = { user: '\u0000any-authenticated-user', uid: -1, gid: -1, groups: [], guest: false };

export interface DescriptorInput {
  view: Session;
  share: string;
  path: string;
  attr: FileAttr;
  /** The Portico user owning the file (by uid), if any. */
  owner: Principal | undefined;
  guest: Principal;
}

/** The whole descriptor (owner, group, DACL); `select` keeps what AdditionalInformation asks. */
export function describe(i: DescriptorInput): SecurityDescriptor {
  const rightsOf = (p: Principal): number => {
    try {
      return maskOf(i.view.as(p).access(i.share, i.path));
    } catch {
      return 0;
    }
  };
  const inherit = i.attr.type === 'dir' ? AceFlags.OBJECT_INHERIT | AceFlags.CONTAINER_INHERIT : 0;
  const everyUser = rightsOf(anyUser);
  const named = new Map<number, number>();
  if (!i.view.principal.guest) named.set(i.view.principal.uid, rightsOf(i.view.principal));
  if (i.owner && !i.owner.guest && !named.has(i.owner.uid)) named.set(i.owner.uid, rightsOf(i.owner));
  const deny: Ace[] = [];
  const allow: Ace[] = [];
  for (const [uid, mask] of named) {
    const less = everyUser & ~mask;
    if (less) deny.push({ type: AceType.ACCESS_DENIED, flags: inherit, mask: less, sid: userSid(uid) });
    if (mask) allow.push({ type: AceType.ACCESS_ALLOWED, flags: inherit, mask, sid: userSid(uid) });
  }
  if (everyUser) allow.push({ type: AceType.ACCESS_ALLOWED, flags: inherit, mask: everyUser, sid: SID.AUTHENTICATED_USERS });
  const guests = rightsOf(i.guest);
  if (guests) allow.push({ type: AceType.ACCESS_ALLOWED, flags: inherit, mask: guests, sid: SID.BUILTIN_GUESTS });
  return {
    // PROTECTED: nothing here is inherited in the Windows sense (each ACE is this path's own answer).
    control: SdControl.DACL_PROTECTED,
    owner: userSid(i.attr.uid),
    group: groupSid(i.attr.gid),
    dacl: { revision: ACL_REVISION, aces: [...deny, ...allow] },
  };
}

/** The parts AdditionalInformation names (unknown bits ignored, MS-SMB2 3.3.5.20.3); no SACL is kept. */
export function select(sd: SecurityDescriptor, info: number): SecurityDescriptor {
  return {
    control: info & SecurityInformation.DACL ? sd.control : 0,
    ...(info & SecurityInformation.OWNER && sd.owner ? { owner: sd.owner } : {}),
    ...(info & SecurityInformation.GROUP && sd.group ? { group: sd.group } : {}),
    ...(info & SecurityInformation.DACL && sd.dacl ? { dacl: sd.dacl } : {}),
  };
}

/** The access an open needs to query (or set) these parts, MS-FSA 2.1.5.14 / 2.1.5.16. */
export function accessNeeded(info: number, set: boolean): number {
  let need = 0;
  if (info & (SecurityInformation.OWNER | SecurityInformation.GROUP)) need |= set ? WRITE_OWNER : READ_CONTROL;
  if (info & SecurityInformation.DACL) need |= set ? WRITE_DAC : READ_CONTROL;
  if (info & SecurityInformation.SACL) need |= ACCESS_SYSTEM_SECURITY;
  return need;
}

export function encodeFor(sd: SecurityDescriptor, info: number): Buffer {
  return encodeSecurityDescriptor(select(sd, info));
}

const aceKey = (a: Ace): string => `${a.type}:${a.flags & ~AceFlags.INHERITED}:${a.mask ?? ''}:${a.sid ? sidString(a.sid) : a.raw?.toString('hex')}`;

/**
 * SET_INFO security: Portico's rights come from the config, so a descriptor cannot change them.
 * A request that would change nothing — the parts it names equal what QUERY_INFO reports (an
 * application re-applying the descriptor it read, as Office's safe save does) — succeeds; any
 * other is ACCESS_DENIED, which Explorer reports as "Access is denied" when saving permissions
 * (Samba with `nt acl support = no` answers success and drops the change: silently lying).
 * 'invalid' for a buffer that is not a descriptor.
 */
export function judgeSet(current: SecurityDescriptor, info: number, buffer: Buffer): 'same' | 'change' | 'invalid' {
  const d = tryDecode(() => decodeSecurityDescriptor(buffer));
  if (!d.ok) return 'invalid';
  const want = d.value;
  if (info & SecurityInformation.SACL && want.sacl && want.sacl.aces.length > 0) return 'change';
  if (info & SecurityInformation.OWNER && want.owner && sidString(want.owner) !== sidString(current.owner!)) return 'change';
  if (info & SecurityInformation.GROUP && want.group && sidString(want.group) !== sidString(current.group!)) return 'change';
  if (info & SecurityInformation.DACL) {
    // A NULL DACL (present, no ACL) would mean "everyone may do anything".
    if (!want.dacl) return 'change';
    const a = want.dacl.aces.map(aceKey).sort();
    const b = current.dacl!.aces.map(aceKey).sort();
    if (a.length !== b.length || a.some((k, i) => k !== b[i])) return 'change';
  }
  return 'same';
}

// ------------------------------------------------------------------ the two commands' security halves

/** QUERY_INFO SMB2_0_INFO_SECURITY on a file or directory open (MS-SMB2 3.3.5.20.3). */
export async function querySecurity(srv: SmbServer, conn: Conn, h: Smb2Header, q: QueryInfoRequest, o: Open, view: Session): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const need = accessNeeded(q.additionalInformation, false);
  if ((o.grantedAccess & need) !== need) return fail(STATUS.ACCESS_DENIED);
  let sd: SecurityDescriptor;
  try {
    sd = await current(srv, o, view);
  } catch (e) {
    return fail(ntStatusOf(e));
  }
  const out = encodeFor(sd, q.additionalInformation);
  if (out.length > q.outputBufferLength) {
    // Never a partial descriptor: the size that would fit, bare before 3.1.1, in an error context on it.
    const size = encodeRequiredSize(out.length);
    const data = conn.dialect === Dialect.SMB3_1_1 ? errorWithContexts([{ id: ErrorId.DEFAULT, data: size }]) : { errorContextCount: 0, errorData: size };
    return { resp: srv.response(conn, h, STATUS.BUFFER_TOO_SMALL, (w) => encodeErrorResponse(w, data)) };
  }
  return { resp: srv.response(conn, h, 0, (w) => encodeOutputResponse(w, out)) };
}

/** SET_INFO SMB2_0_INFO_SECURITY: succeeds only when it changes nothing (judgeSet). */
export async function setSecurity(srv: SmbServer, conn: Conn, h: Smb2Header, q: SetInfoRequest, o: Open, view: Session): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const info = q.additionalInformation & (SecurityInformation.OWNER | SecurityInformation.GROUP | SecurityInformation.DACL | SecurityInformation.SACL);
  if (info === 0) return fail(STATUS.INVALID_PARAMETER);
  const need = accessNeeded(info, true);
  let sd: SecurityDescriptor;
  try {
    sd = await current(srv, o, view);
  } catch (e) {
    return fail(ntStatusOf(e));
  }
  const verdict = judgeSet(sd, info, q.buffer);
  if (verdict === 'invalid') return fail(STATUS.INVALID_PARAMETER);
  // The open must hold WRITE_DAC / WRITE_OWNER even to re-apply the same descriptor (as on Windows).
  if ((o.grantedAccess & need) !== need || verdict === 'change') return fail(STATUS.ACCESS_DENIED);
  return { resp: srv.response(conn, h, 0, encodeSetInfoResponse) };
}

async function current(srv: SmbServer, o: Open, view: Session): Promise<SecurityDescriptor> {
  const attr = await view.fstat(o.handle!);
  const auth = srv.sessions.authenticator;
  const owner = attr.uid === view.principal.uid ? view.principal : await auth.principalForUid(attr.uid).catch(() => undefined);
  return describe({ view, share: o.tree.share!, path: o.handle!.path, attr, owner, guest: auth.guest() });
}
