/**
 * The commands after SESSION_SETUP: each is a decoded request → Session call → response body and
 * status. Files are opened by path on the share (`Session.open` with the SMB share access as VFS
 * share modes, so a deny-write open refuses a WebDAV PUT or an NFS WRITE too); an SMB FileId
 * stands for one open (a Handle), the VFS file id is the IndexNumber clients see. IPC$ serves
 * the srvsvc pipe for share listing. Anything not handled here is STATUS_NOT_SUPPORTED.
 */
import { Command, type Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { isRelatedFileId, tryDecode, type FileId } from '../wire.ts';
import { Dialect, SecurityMode } from '../messages/negotiate.ts';
import { ShareType, decodeTreeConnectRequest, encodeTreeConnectResponse } from '../messages/tree-connect.ts';
import { decodeCreateRequest, encodeCreateResponse, type CreateContext } from '../messages/create.ts';
import { CloseFlags, decodeCloseRequest, decodeFlushRequest, decodeReadRequest, decodeWriteRequest, encodeCloseResponse, encodeReadResponse, encodeReadResponseHead, encodeWriteResponse } from '../messages/file-ops.ts';
import { Fsctl, decodeIoctlRequest, encodeNetworkInterfaceInfo, decodeValidateNegotiateInfo, encodeIoctlResponse, encodeValidateNegotiateInfoResponse, validateNegotiateMatches } from '../messages/ioctl.ts';
import { InfoType, QueryDirectoryFlags, decodeQueryDirectoryRequest, decodeQueryInfoRequest, decodeSetInfoRequest, encodeOutputResponse } from '../messages/info.ts';
import { encodeEmpty, encodeSetInfoResponse } from '../messages/simple.ts';
import { ContextName, contextOf, encodeMaximalAccessResponse, findContext } from '../messages/create-contexts.ts';
import {
  SYNTAX, SrvsvcOpnum, WERR, bindResults, decodePdu, decodeShareEnumAll, decodeShareGetInfo, encodeBindAck, encodeBindNak, encodeFault,
  encodeResponse, encodeShareEnumAllResponse, encodeShareGetInfoResponse, FaultStatus, type ShareInfo1,
} from '../dcerpc.ts';
import type { CreateDisposition, FileAttr } from '../../../src/vfs/types.ts';
import { SETTABLE_WIN_ATTRS, WinAttr } from '../../../src/vfs/types.ts';
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { NT, ntStatusOf } from '../errors.ts';
import {
  FileInfoClass, VARIABLE_FILE_CLASSES, VARIABLE_FS_CLASSES, attributesOf, volumeSerial, dirEntry, dirEntryMinBytes, fileInfo, fromFileTime, fsInfo, hasWildcards, isDirClass, patternMatcher, timesOf,
} from './fsinfo.ts';
import type { Conn, Open, SmbServer, SmbSession, Tree } from './server.ts';
import type { AsyncOp } from './async.ts';
import { lock } from './lock.ts';
import { lastComponent, refusedCreate, refusedName, resolveDots, streamlessPath } from './names.ts';
import { changeNotify, deletePending, endNotify } from './notify.ts';
import { querySecurity, setSecurity } from './security.ts';
import { treeConnectDecision } from './share-policy.ts';

export interface CommandResult {
  resp: Buffer;
  /** Data that follows `resp` in the same message, sent as a piece of its own (a READ's payload). */
  payload?: Buffer;
  /** Called once `payload` has been sent (or sealed): its buffer goes back to the connection's pool. */
  payloadDone?: () => void;
  fileId?: FileId;
  /** Work after the response is queued (LOGOFF ends the session's state). */
  after?: () => Promise<void>;
  /** `resp` is an interim STATUS_PENDING response; the final one comes from this async request. */
  async?: AsyncOp;
}

const Access = {
  READ_DATA: 0x1, WRITE_DATA: 0x2, APPEND_DATA: 0x4, READ_EA: 0x8, WRITE_EA: 0x10, EXECUTE: 0x20, DELETE_CHILD: 0x40,
  READ_ATTRIBUTES: 0x80, WRITE_ATTRIBUTES: 0x100, DELETE: 0x10000, READ_CONTROL: 0x20000, WRITE_DAC: 0x40000, WRITE_OWNER: 0x80000,
  SYNCHRONIZE: 0x100000, MAXIMUM_ALLOWED: 0x2000000, GENERIC_ALL: 0x1000_0000, GENERIC_EXECUTE: 0x2000_0000, GENERIC_WRITE: 0x4000_0000, GENERIC_READ: 0x8000_0000,
} as const;
const READ_MASK = 0x0012_00a9; // FILE_GENERIC_READ | EXECUTE
const ALL_MASK = 0x001f_01ff; // FILE_ALL_ACCESS
const Disposition = { SUPERSEDE: 0, OPEN: 1, CREATE: 2, OPEN_IF: 3, OVERWRITE: 4, OVERWRITE_IF: 5 } as const;
const CreateOptions = { DIRECTORY_FILE: 0x1, NON_DIRECTORY_FILE: 0x40, DELETE_ON_CLOSE: 0x1000 } as const;
const CREATE_OPTIONS_INVALID = 0xff00_0000;
/** VOLUME, DEVICE, 0x8000 and the top half (smbtorture smb2.create.gentest's mask from Windows). */
const FILE_ATTRIBUTES_INVALID = 0xffff_8048;
/** Access bits no access right uses (9-15, 21-23, 26-27). */
const ACCESS_RESERVED = 0x0ce0_fe00;
const FILE_ATTRIBUTE_TEMPORARY = 0x100;
const STATUS_PRIVILEGE_NOT_HELD = 0xc000_0061;
/** COMPLETE_IF_OPLOCKED, OPEN_BY_FILE_ID, RESERVE_OPFILTER. */
const CREATE_OPTIONS_NOT_SUPPORTED = 0x0010_2080;
const STATUS_BAD_IMPERSONATION_LEVEL = 0xc000_00a5;
const CreateAction = { SUPERSEDED: 0, OPENED: 1, CREATED: 2, OVERWRITTEN: 3 } as const;
const STATUS_PIPE_EMPTY = 0xc000_00d9;
const STATUS_FS_DRIVER_REQUIRED = 0xc000_019c;
const INT64_MAX = 0x7fff_ffff_ffff_ffffn;
/** NTFS's largest file size (16 TiB - 64 KiB), the limit Windows answers writes with. */
const MAX_FILE_SIZE = 0xfff_ffff_0000n;
/** Opens one SMB session may hold (Windows' default per-session limit is 16,384 too). */
export const MAX_OPENS_PER_SESSION = 16_384;

const DISPOSITIONS: Record<number, CreateDisposition> = {
  [Disposition.SUPERSEDE]: 'createOrTruncate',
  [Disposition.OPEN]: 'open',
  [Disposition.CREATE]: 'create',
  [Disposition.OPEN_IF]: 'openOrCreate',
  [Disposition.OVERWRITE]: 'truncate',
  [Disposition.OVERWRITE_IF]: 'createOrTruncate',
};

/** The call's view: the SMB session's client state as its principal. */
const viewOf = (sess: SmbSession): Session => sess.root!.as(sess.root!.principal);

function maximalAccessFor(view: Session, share: string, path: string): number {
  try {
    const r = view.access(share, path);
    if (r.write && !r.readOnlyShare) return ALL_MASK;
    return r.read ? READ_MASK : 0;
  } catch {
    return 0;
  }
}

/**
 * MS-SMB2 3.3.5.2.5: from 2.1 on, a request moving more than 64 KiB must be charged one credit per
 * 64 KiB (the larger of what it sends and what it may get back); an undercharged one is refused.
 */
function chargeOk(conn: Conn, h: Smb2Header, bytes: number): boolean {
  if (conn.dialect < Dialect.SMB2_1) return true;
  return Math.max(1, h.creditCharge) >= Math.ceil(Math.max(1, bytes) / 65536);
}

export async function runCommand(srv: SmbServer, conn: Conn, sess: SmbSession, h: Smb2Header, el: Buffer, chainFileId: FileId | undefined): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const ok = (body: Parameters<SmbServer['response']>[3], over = {}): CommandResult => ({ resp: srv.response(conn, h, 0, body, over) });
  const decoded = <T>(fn: () => T): T | undefined => {
    const d = tryDecode(fn);
    return d.ok ? d.value : undefined;
  };
  const fidOf = (id: FileId): FileId => (isRelatedFileId(id) && chainFileId ? chainFileId : id);
  const openOf = (id: FileId): Open | undefined => {
    const f = fidOf(id);
    const o = sess.opens.get(f.volatile);
    // Open.DurableFileId must match FileId.Persistent too, else FILE_CLOSED (MS-SMB2 3.3.5.x).
    return o && o.tree.id === h.treeId && f.persistent === o.volatile ? o : undefined;
  };
  const tree = sess.trees.get(h.treeId);
  const view = viewOf(sess);

  switch (h.command) {
    case Command.LOGOFF: {
      conn.sessions.delete(sess.id);
      return { ...ok(encodeEmpty), after: () => srv.endSession(sess) };
    }
    case Command.ECHO:
      return ok(encodeEmpty);
    case Command.TREE_CONNECT: {
      const q = decoded(() => decodeTreeConnectRequest(el));
      if (!q) return fail(STATUS.INVALID_PARAMETER);
      const name = q.path.split('\\').pop() ?? '';
      const id = sess.nextTree++;
      if (name.toUpperCase() === 'IPC$') {
        sess.trees.set(id, { id, share: undefined, maximalAccess: ALL_MASK });
        return ok((w) => encodeTreeConnectResponse(w, { shareType: ShareType.PIPE, shareFlags: 0x30, capabilities: 0, maximalAccess: ALL_MASK }), { treeId: id });
      }
      const t = treeConnectDecision(srv, conn, sess, view.principal, name);
      if ('status' in t) return fail(t.status);
      const share = t.share;
      const maximalAccess = maximalAccessFor(view, share, '/');
      if (maximalAccess === 0) return fail(STATUS.ACCESS_DENIED);
      sess.trees.set(id, { id, share, maximalAccess, encryptRequired: t.encryptRequired });
      return ok((w) => encodeTreeConnectResponse(w, { shareType: ShareType.DISK, shareFlags: t.shareFlags, capabilities: 0, maximalAccess }), { treeId: id });
    }
    case Command.TREE_DISCONNECT: {
      if (!tree) return fail(STATUS.NETWORK_NAME_DELETED);
      sess.trees.delete(tree.id);
      for (const [k, o] of sess.opens) {
        if (o.tree !== tree) continue;
        sess.opens.delete(k);
        endNotify(o);
        if (o.handle) await view.close(o.handle).catch(() => undefined);
      }
      return ok(encodeEmpty);
    }
    case Command.IOCTL: {
      const q = decoded(() => decodeIoctlRequest(el));
      if (!q) return fail(STATUS.INVALID_PARAMETER);
      if (q.ctlCode === Fsctl.VALIDATE_NEGOTIATE_INFO) {
        // MS-SMB2 3.3.5.15.12: a mismatch means a downgraded negotiation; drop the connection.
        const v = tryDecode(() => decodeValidateNegotiateInfo(q.input));
        if (!(v.ok && conn.negotiate && validateNegotiateMatches(v.value, conn.negotiate))) {
          conn.sock.destroy();
          return fail(STATUS.ACCESS_DENIED);
        }
        const output = encodeValidateNegotiateInfoResponse({ capabilities: conn.serverCapabilities, guid: srv.serverGuid, securityMode: conn.securityMode || SecurityMode.SIGNING_ENABLED, dialect: conn.dialect });
        return ok((w) => encodeIoctlResponse(w, { ctlCode: q.ctlCode, fileId: q.fileId, input: Buffer.alloc(0), output, flags: 0 }));
      }
      // A server without DFS answers referral requests so (MS-SMB2 3.3.5.15.2); clients then use the path as is.
      if (q.ctlCode === Fsctl.DFS_GET_REFERRALS || q.ctlCode === Fsctl.DFS_GET_REFERRALS_EX) return fail(STATUS_FS_DRIVER_REQUIRED);
      if (q.ctlCode === Fsctl.QUERY_NETWORK_INTERFACE_INFO) {
        // One interface: the address this connection reached (no RSS, no RDMA; multichannel later).
        const address = (conn.sock.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
        const output = encodeNetworkInterfaceInfo([{ ifIndex: 1, capability: 0, linkSpeed: 1_000_000_000n, address }]);
        if (output.length > q.maxOutputResponse) return fail(STATUS.BUFFER_TOO_SMALL);
        return ok((w) => encodeIoctlResponse(w, { ctlCode: q.ctlCode, fileId: q.fileId, input: Buffer.alloc(0), output, flags: 0 }));
      }
      if (q.ctlCode !== Fsctl.PIPE_TRANSCEIVE) return fail(STATUS.NOT_SUPPORTED);
      const o = openOf(q.fileId);
      if (!o?.pipe) return fail(STATUS.FILE_CLOSED);
      const out = rpc(srv, sess, q.input);
      const part = out.subarray(0, q.maxOutputResponse);
      if (part.length < out.length) o.pipe.push(out.subarray(part.length));
      return { resp: srv.response(conn, h, part.length < out.length ? STATUS.BUFFER_OVERFLOW : 0, (w) => encodeIoctlResponse(w, { ctlCode: q.ctlCode, fileId: fidOf(q.fileId), input: Buffer.alloc(0), output: part, flags: 0 })) };
    }
    case Command.CREATE:
      if (!tree) return fail(STATUS.NETWORK_NAME_DELETED);
      if (sess.opens.size >= MAX_OPENS_PER_SESSION) return fail(NT.INSUFFICIENT_RESOURCES);
      return create(srv, conn, sess, tree, h, el, view);
    case Command.CLOSE: {
      const q = decoded(() => decodeCloseRequest(el));
      if (!q) return fail(STATUS.INVALID_PARAMETER);
      const o = openOf(q.fileId);
      if (!o) return fail(STATUS.FILE_CLOSED);
      sess.opens.delete(o.volatile);
      endNotify(o);
      let attr: FileAttr | undefined;
      if (o.handle) {
        if (q.flags & CloseFlags.POSTQUERY_ATTRIB) attr = await view.fstat(o.handle).catch(() => undefined);
        try {
          await view.close(o.handle);
        } catch (e) {
          return fail(ntStatusOf(e));
        }
        if (o.deletePending && o.kind === 'dir') deletePending(o.handle.fileId);
      }
      const t = attr ? timesOf(attr) : { creationTime: 0n, lastAccessTime: 0n, lastWriteTime: 0n, changeTime: 0n };
      return ok((w) => encodeCloseResponse(w, {
        flags: attr ? CloseFlags.POSTQUERY_ATTRIB : 0, ...t,
        allocationSize: attr && attr.type !== 'dir' ? BigInt(attr.allocated) : 0n, endOfFile: attr && attr.type !== 'dir' ? BigInt(attr.size) : 0n, fileAttributes: attr ? attributesOf(attr) : 0,
      }));
    }
    case Command.FLUSH: {
      const q = decoded(() => decodeFlushRequest(el));
      if (!q) return fail(STATUS.INVALID_PARAMETER);
      const o = openOf(q.fileId);
      if (!o) return fail(STATUS.FILE_CLOSED);
      if (o.handle && o.kind === 'file') {
        try {
          await view.flush(o.handle);
        } catch (e) {
          return fail(ntStatusOf(e));
        }
      }
      return ok(encodeEmpty);
    }
    case Command.READ: {
      const q = decoded(() => decodeReadRequest(el));
      if (!q || !chargeOk(conn, h, q.length)) return fail(STATUS.INVALID_PARAMETER);
      const o = openOf(q.fileId);
      if (!o) return fail(STATUS.FILE_CLOSED);
      if (o.pipe) {
        const data = o.pipe.shift();
        if (!data) return fail(STATUS_PIPE_EMPTY);
        if (data.length > q.length) {
          o.pipe.unshift(data.subarray(q.length));
          return { resp: srv.response(conn, h, STATUS.BUFFER_OVERFLOW, (w) => encodeReadResponse(w, { data: data.subarray(0, q.length), dataRemaining: data.length - q.length })) };
        }
        return ok((w) => encodeReadResponse(w, { data, dataRemaining: 0 }));
      }
      if (o.kind !== 'file' || !o.handle) return fail(STATUS.INVALID_DEVICE_REQUEST);
      // The open's granted access decides, not the share mode's (MS-SMB2 3.3.5.12).
      if (!(o.grantedAccess & (Access.READ_DATA | Access.EXECUTE))) return fail(STATUS.ACCESS_DENIED);
      // Offsets are signed 64-bit (as Windows and Samba check them; smbtorture smb2.rw.invalid): past
      // INT64_MAX, or a range ending past it, is INVALID_PARAMETER; anything past what a file can
      // hold is the end of the file.
      if (q.offset > INT64_MAX || q.offset + BigInt(q.length) > INT64_MAX) return fail(STATUS.INVALID_PARAMETER);
      if (q.offset > BigInt(Number.MAX_SAFE_INTEGER)) return q.length === 0 ? ok((w) => encodeReadResponseHead(w, { dataLength: 0, dataRemaining: 0 })) : fail(STATUS.END_OF_FILE);
      // A large READ is read into a buffer of the connection's pool, given back once sent: a new
      // 1-8 MiB buffer per READ was page-faulted in and left to full GCs (framing.ts MessagePool).
      const pool = conn.pool && q.length >= conn.pool.minBytes ? conn.pool : undefined;
      const buf = pool?.alloc(q.length);
      const giveBack = (): void => void (buf && pool!.release(buf));
      let data: Buffer;
      try {
        data = buf ? buf.subarray(0, await view.readInto(o.handle, Number(q.offset), buf)) : await view.read(o.handle, Number(q.offset), q.length);
      } catch (e) {
        giveBack();
        return fail(ntStatusOf(e));
      }
      // Nothing at or past the end of the file is STATUS_END_OF_FILE (MS-SMB2 3.3.5.12).
      if ((data.length === 0 && q.length > 0) || data.length < q.minimumCount) {
        giveBack();
        return fail(STATUS.END_OF_FILE);
      }
      return { ...ok((w) => encodeReadResponseHead(w, { dataLength: data.length, dataRemaining: 0 })), payload: data, ...(buf ? { payloadDone: giveBack } : {}) };
    }
    case Command.WRITE: {
      const q = decoded(() => decodeWriteRequest(el));
      if (!q || !chargeOk(conn, h, q.data.length)) return fail(STATUS.INVALID_PARAMETER);
      const o = openOf(q.fileId);
      if (!o) return fail(STATUS.FILE_CLOSED);
      if (o.pipe) {
        o.pipe.push(rpc(srv, sess, q.data));
        return ok((w) => encodeWriteResponse(w, { count: q.data.length, remaining: 0 }));
      }
      if (o.kind !== 'file' || !o.handle) return fail(STATUS.INVALID_DEVICE_REQUEST);
      if (!(o.grantedAccess & (Access.WRITE_DATA | Access.APPEND_DATA))) return fail(STATUS.ACCESS_DENIED);
      // As Windows (smbtorture smb2.rw.invalid): a negative offset, or data at or past NTFS's largest
      // file size, is INVALID_PARAMETER; a write ending past it DISK_FULL; an empty write anywhere
      // below INT64_MAX writes nothing.
      if (q.offset > INT64_MAX || (q.data.length > 0 && q.offset >= MAX_FILE_SIZE)) return fail(STATUS.INVALID_PARAMETER);
      if (q.data.length === 0) return ok((w) => encodeWriteResponse(w, { count: 0, remaining: 0 }));
      if (q.offset + BigInt(q.data.length) >= MAX_FILE_SIZE) return fail(NT.DISK_FULL);
      let n: number;
      try {
        n = await view.write(o.handle, Number(q.offset), q.data);
      } catch (e) {
        return fail(ntStatusOf(e));
      }
      return ok((w) => encodeWriteResponse(w, { count: n, remaining: 0 }));
    }
    case Command.LOCK:
      return lock(srv, conn, sess, h, el, view, openOf);
    case Command.CHANGE_NOTIFY:
      return changeNotify(srv, conn, sess, h, el, view, openOf);
    case Command.QUERY_DIRECTORY:
      return queryDirectory(srv, conn, h, el, view, openOf);
    case Command.QUERY_INFO:
      return queryInfo(srv, conn, h, el, view, openOf);
    case Command.SET_INFO:
      return setInfo(srv, conn, h, el, view, openOf);
    default:
      return fail(STATUS.NOT_SUPPORTED);
  }
}

async function create(srv: SmbServer, conn: Conn, sess: SmbSession, tree: Tree, h: Smb2Header, el: Buffer, view: Session): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeCreateRequest(el));
  if (!d.ok) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const zeroTimes = { creationTime: 0n, lastAccessTime: 0n, lastWriteTime: 0n, changeTime: 0n };
  if (tree.share === undefined) {
    if (q.name.toLowerCase() !== 'srvsvc') return fail(STATUS.OBJECT_NAME_NOT_FOUND);
    const id = srv.newFileId();
    const fileId = { persistent: id, volatile: id };
    sess.opens.set(id, { volatile: id, tree, kind: 'pipe', grantedAccess: q.desiredAccess, deletePending: false, pipe: [] });
    return {
      resp: srv.response(conn, h, 0, (w) => encodeCreateResponse(w, { oplockLevel: 0, flags: 0, createAction: 1, ...zeroTimes, allocationSize: 4096n, endOfFile: 0n, fileAttributes: 0x80, fileId, contexts: [] })),
      fileId,
    };
  }
  const share = tree.share;
  // Requests Windows refuses before looking at the name (MS-SMB2 3.3.5.9; the masks are what
  // smbtorture smb2.create.gentest records from Windows; leading-slash, impersonation): an
  // impersonation level past Delegation, share access past READ|WRITE|DELETE, create options in
  // the top byte, a name starting with a backslash; COMPLETE_IF_OPLOCKED, OPEN_BY_FILE_ID and
  // RESERVE_OPFILTER are not supported.
  if (q.impersonationLevel > 3) return fail(STATUS_BAD_IMPERSONATION_LEVEL);
  if (q.shareAccess & ~0x7 || q.createOptions & CREATE_OPTIONS_INVALID || q.name.startsWith('\\')) return fail(STATUS.INVALID_PARAMETER);
  if (q.createOptions & CREATE_OPTIONS_NOT_SUPPORTED) return fail(NT.NOT_SUPPORTED);
  // Attributes no file can be created with (VOLUME, DEVICE, the reserved high bits), TEMPORARY on a
  // directory (MS-FSA 2.1.5.1), reserved access bits, and no access at all: as Windows answers.
  if (q.desiredAccess === 0 || q.desiredAccess & ACCESS_RESERVED) return fail(STATUS.ACCESS_DENIED);
  // ACCESS_SYSTEM_SECURITY (SACLs) needs a privilege no Portico user holds.
  if (q.desiredAccess & 0x0100_0000) return fail(STATUS_PRIVILEGE_NOT_HELD);
  if (q.fileAttributes & FILE_ATTRIBUTES_INVALID || (q.createOptions & CreateOptions.DIRECTORY_FILE && q.fileAttributes & FILE_ATTRIBUTE_TEMPORARY)) return fail(STATUS.INVALID_PARAMETER);
  const named = streamlessPath(q.name);
  if (named === undefined) return fail(NT.OBJECT_NAME_INVALID);
  const path = resolveDots(named);
  if (path === undefined) return fail(NT.OBJECT_PATH_SYNTAX_BAD);
  const disposition = DISPOSITIONS[q.createDisposition];
  if (disposition === undefined) return fail(STATUS.INVALID_PARAMETER);
  const wantDir = (q.createOptions & CreateOptions.DIRECTORY_FILE) !== 0;
  const wantFile = (q.createOptions & CreateOptions.NON_DIRECTORY_FILE) !== 0;
  if (wantDir && wantFile) return fail(STATUS.INVALID_PARAMETER);
  if (wantDir && (disposition === 'truncate' || disposition === 'createOrTruncate')) return fail(STATUS.INVALID_PARAMETER);
  // The rights asked of the ACL only when needed: for MAXIMUM_ALLOWED and the MxAc context
  // (smbclient's get/put and the cifs client's opens ask for neither).
  let maxKnown: number | undefined;
  const maximal = (): number => (maxKnown ??= maximalAccessFor(view, share, path));
  let desired = q.desiredAccess;
  if (desired & Access.MAXIMUM_ALLOWED) desired |= maximal();
  if (desired & Access.GENERIC_ALL) desired |= ALL_MASK;
  if (desired & Access.GENERIC_READ) desired |= READ_MASK;
  if (desired & Access.GENERIC_EXECUTE) desired |= Access.EXECUTE | Access.READ_ATTRIBUTES;
  if (desired & Access.GENERIC_WRITE) desired |= Access.WRITE_DATA | Access.APPEND_DATA | Access.WRITE_ATTRIBUTES | Access.WRITE_EA;
  desired &= 0x00ff_ffff & ~Access.MAXIMUM_ALLOWED;
  const deleteOnClose = (q.createOptions & CreateOptions.DELETE_ON_CLOSE) !== 0;
  if (deleteOnClose && !(desired & Access.DELETE)) return fail(STATUS.ACCESS_DENIED);
  // The open's data access (and so its share-mode footprint) is what it was granted, MAXIMUM_ALLOWED
  // expanded, as on Windows and Samba (MS-FSA 2.1.5.1.2: the share check uses GrantedAccess): a
  // MAXIMUM_ALLOWED open may write (smbtorture's create_complex_file writes through one).
  const access = {
    read: (desired & (Access.READ_DATA | Access.EXECUTE)) !== 0,
    write: (desired & (Access.WRITE_DATA | Access.APPEND_DATA)) !== 0,
    delete: (desired & Access.DELETE) !== 0,
  };
  const shareAccess = { read: (q.shareAccess & 1) !== 0, write: (q.shareAccess & 2) !== 0, delete: (q.shareAccess & 4) !== 0 };
  // On a directory WRITE_DATA/APPEND_DATA are ADD_FILE/ADD_SUBDIRECTORY, not data access: a
  // directory open never takes the VFS's write access (which refuses directories, EISDIR).
  const openAs = (dirAccess: boolean, disp: CreateDisposition = disposition): Promise<Handle> => view.open(share, path, {
    access: dirAccess ? { ...access, write: false } : access,
    share: shareAccess,
    disposition: disp,
    expect: wantDir ? 'dir' : wantFile ? 'file' : 'any',
    deleteOnClose,
    owner: `smb:${conn.id}:${sess.id}`,
    // A file created gets ARCHIVE besides what the client asked for, as on NTFS (MS-FSA 2.1.5.1.1);
    // the VFS applies these only when the open creates (smbtorture smb2.openattr).
    ...(wantDir ? (q.fileAttributes & SETTABLE_WIN_ATTRS ? { winAttributes: q.fileAttributes & SETTABLE_WIN_ATTRS } : {}) : { winAttributes: (q.fileAttributes & SETTABLE_WIN_ATTRS) | WinAttr.ARCHIVE }),
  });
  // A new name first (smbclient's put and mput, cifs creates): OPEN_IF, OVERWRITE_IF and SUPERSEDE
  // try an exclusive create without the lookup before it, which serves only an existing file (its
  // CreateAction, the overwrite rules below). EEXIST, or any other failure, takes the general path,
  // which looks first. Saves a getattr (a backend stat, a store lookup, an ENOENT error) per new file.
  let fresh: Handle | undefined;
  if ((disposition === 'openOrCreate' || disposition === 'createOrTruncate') && !deleteOnClose && !refusedCreate(q.name, 'create', false)) {
    fresh = await openAs(wantDir, 'create').catch(() => undefined);
  }
  // Whether the open creates: known before for the dispositions that may or may not.
  let existed: boolean | undefined;
  let current: FileAttr | undefined;
  if (!fresh && (disposition === 'openOrCreate' || disposition === 'createOrTruncate' || disposition === 'truncate')) {
    existed = await view.getattr(share, path).then((a) => ((current = a), true), (e: unknown) => (isVfsError(e, 'ENOENT') ? false : undefined));
  }
  // FILE_DELETE_ON_CLOSE on an existing read-only file or directory is STATUS_CANNOT_DELETE (MS-FSA
  // 2.1.5.1.2.1), as SET_INFO Disposition answers; so is a file it would create read-only (2.1.5.1.1).
  // The mark itself is set when this open closes (the VFS: other opens go on meanwhile), and a
  // directory that is not empty then stays, its CLOSE answering DIRECTORY_NOT_EMPTY as Samba's does.
  if (deleteOnClose) {
    if (disposition !== 'create' && current === undefined && existed === undefined) current = await view.getattr(share, path).catch(() => undefined);
    const readOnly = current ? (current.winAttributes & WinAttr.READONLY) !== 0 : (q.fileAttributes & WinAttr.READONLY) !== 0 && disposition !== 'open' && disposition !== 'truncate';
    if (readOnly) return fail(NT.CANNOT_DELETE);
  }
  // Overwriting a hidden or system file must name that attribute again (MS-FSA 2.1.5.1.2.1;
  // smbtorture smb2.dosmode): else ACCESS_DENIED.
  if (current?.type === 'file' && (disposition === 'truncate' || disposition === 'createOrTruncate')) {
    const keep = current.winAttributes & (WinAttr.HIDDEN | WinAttr.SYSTEM);
    if ((keep & q.fileAttributes) !== keep) return fail(STATUS.ACCESS_DENIED);
  }
  // Names Windows cannot use are never created; existing ones still open (names.ts).
  if (refusedCreate(q.name, disposition, existed)) return fail(NT.OBJECT_NAME_INVALID);
  let handle;
  try {
    try {
      handle = fresh ?? (await openAs(wantDir));
    } catch (e) {
      // Not known to be a directory before (no FILE_DIRECTORY_FILE): it was one.
      if (!(isVfsError(e, 'EISDIR') && access.write && !wantDir && !wantFile && (disposition === 'open' || disposition === 'openOrCreate'))) throw e;
      handle = await openAs(true);
    }
  } catch (e) {
    // A missing parent directory is a path not found (MS-FSA 2.1.5.1), not a name not found.
    if (isVfsError(e, 'ENOENT') && disposition !== 'open' && disposition !== 'truncate' && path.lastIndexOf('/') > 0) {
      const parent = path.slice(0, path.lastIndexOf('/'));
      const parentThere = await view.getattr(share, parent).then(() => true, () => false);
      if (!parentThere) return fail(NT.OBJECT_PATH_NOT_FOUND);
    }
    return fail(ntStatusOf(e));
  }
  let attr: FileAttr;
  try {
    // An overwrite or supersede of a file replaces its attributes with those asked for, plus
    // ARCHIVE (MS-FSA 2.1.5.1.2.1; smbtorture smb2.dosmode, smb2.openattr).
    if (current?.type === 'file' && (disposition === 'truncate' || disposition === 'createOrTruncate')) {
      await view.fsetattr(handle, { winAttributes: (q.fileAttributes & SETTABLE_WIN_ATTRS) | WinAttr.ARCHIVE });
    }
    // The attributes the open itself found (no second stat: a backend call per CREATE); a file
    // this open created, truncated or re-attributed is stat'ed (Session.attrAtOpen falls back).
    attr = await view.attrAtOpen(handle);
  } catch (e) {
    await view.close(handle).catch(() => undefined);
    return fail(ntStatusOf(e));
  }
  // Whether this open created its file is the open's own answer (Handle.created), not the stat
  // made before it: a create or delete by another client in between cannot make it wrong.
  const createAction =
    handle.created ? CreateAction.CREATED
    : disposition === 'truncate' ? CreateAction.OVERWRITTEN
    : disposition === 'createOrTruncate' ? (q.createDisposition === Disposition.SUPERSEDE ? CreateAction.SUPERSEDED : CreateAction.OVERWRITTEN)
    : CreateAction.OPENED;
  const id = srv.newFileId();
  const fileId = { persistent: id, volatile: id };
  sess.opens.set(id, { volatile: id, tree, kind: attr.type === 'dir' ? 'dir' : 'file', handle, grantedAccess: desired, deletePending: deleteOnClose });
  const contexts: CreateContext[] = [];
  if (findContext(q.contexts, ContextName.MAXIMAL_ACCESS)) contexts.push(contextOf(ContextName.MAXIMAL_ACCESS, encodeMaximalAccessResponse(0, maximal())));
  return {
    resp: srv.response(conn, h, 0, (w) => encodeCreateResponse(w, {
      oplockLevel: 0, flags: 0, createAction, ...timesOf(attr),
      allocationSize: attr.type === 'dir' ? 0n : BigInt(attr.allocated), endOfFile: attr.type === 'dir' ? 0n : BigInt(attr.size),
      fileAttributes: attributesOf(attr), fileId, contexts,
    })),
    fileId,
  };
}

type OpenOf = (id: FileId) => Open | undefined;

/**
 * Entries one QUERY_DIRECTORY response gathers at most, whatever the client's buffer allows (up
 * to 8 MiB, ~80,000 entries: smbclient asks that much). Each costs a VFS lookup; a cold
 * 100,000-entry directory took longer than smbclient's 20 s request timeout in one response
 * (NT_STATUS_INVALID_NETWORK_RESPONSE). Fewer entries than fit is a valid answer: clients ask again.
 */
export const MAX_DIR_ENTRIES_PER_RESPONSE = 4096;

async function queryDirectory(srv: SmbServer, conn: Conn, h: Smb2Header, el: Buffer, view: Session, openOf: OpenOf): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeQueryDirectoryRequest(el));
  if (!d.ok || !chargeOk(conn, h, d.value.outputBufferLength)) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const o = openOf(q.fileId);
  if (!o) return fail(STATUS.FILE_CLOSED);
  if (o.kind !== 'dir' || !o.handle || o.tree.share === undefined) return fail(STATUS.INVALID_PARAMETER);
  if (!isDirClass(q.infoClass)) return fail(NT.NOT_SUPPORTED);
  const share = o.tree.share;
  if (!o.dir || q.flags & (QueryDirectoryFlags.RESTART_SCANS | QueryDirectoryFlags.REOPEN)) {
    o.dir = { pattern: q.pattern || '*', dotsSent: false, eof: false, pending: [] };
  }
  const st = o.dir;
  const first = st.cookie === undefined && !st.dotsSent && !st.single;
  const pattern = st.pattern ?? '*';
  const matches = patternMatcher(pattern);
  const single = (q.flags & QueryDirectoryFlags.RETURN_SINGLE_ENTRY) !== 0;
  const chunks: Buffer[] = [];
  let used = 0;
  let lastStart = -1;
  let count = 0;
  const add = (name: string, attr: FileAttr): boolean => {
    const e = dirEntry(q.infoClass, name, attr);
    const start = (used + 7) & ~7;
    if (start + e.length > q.outputBufferLength) return false;
    if (lastStart >= 0) chunks[chunks.length - 1]!.writeUInt32LE(start - lastStart, 0);
    if (start > used) chunks.push(Buffer.alloc(start - used));
    chunks.push(e);
    lastStart = start;
    used = start + e.length;
    count++;
    return true;
  };
  try {
    if (!hasWildcards(pattern)) {
      // One name: a lookup, not a listing (Windows probes names this way constantly).
      if (st.single) return fail(STATUS.NO_MORE_FILES);
      st.single = true;
      let a: FileAttr;
      try {
        a = await view.lookup(share, o.handle.fileId, pattern);
      } catch (e) {
        return fail(isVfsError(e, 'ENOENT') ? NT.NO_SUCH_FILE : ntStatusOf(e));
      }
      if (!add(pattern, a)) return fail(NT.INFO_LENGTH_MISMATCH);
    } else {
      if (!st.dotsSent) {
        const self = await view.fstat(o.handle);
        const parent = o.handle.path === '/' ? self : await view.lookupParent(share, self.id).catch(() => self);
        const dots: [string, FileAttr][] = [['.', self], ['..', parent]];
        for (const [n, a] of dots) if (matches(n)) st.pending.push({ name: n, attr: a });
        st.dotsSent = true;
      }
      for (;;) {
        while (st.pending.length > 0) {
          const e = st.pending[0]!;
          if (!add(e.name, e.attr)) {
            if (chunks.length === 0) return fail(NT.INFO_LENGTH_MISMATCH);
            break;
          }
          st.pending.shift();
          if (single || count >= MAX_DIR_ENTRIES_PER_RESPONSE) break;
        }
        if (st.pending.length > 0 || (single && chunks.length > 0) || st.eof || count >= MAX_DIR_ENTRIES_PER_RESPONSE) break;
        // No more read ahead than this response can hold: entries kept for a later call would carry
        // the attributes (and the existence) they had when read, where Windows reports them as
        // they are at the call (a file deleted or changed between two calls of one scan).
        const room = single ? 1 : Math.min(MAX_DIR_ENTRIES_PER_RESPONSE - count, Math.ceil((q.outputBufferLength - used) / dirEntryMinBytes(q.infoClass)));
        const page = await view.readdirById(share, o.handle.fileId, { ...(st.cookie !== undefined ? { cookie: st.cookie } : {}), limit: Math.max(1, Math.min(512, room)) });
        for (const e of page.entries) {
          st.cookie = e.cookie;
          if (matches(e.name)) st.pending.push({ name: e.name, attr: e.attr });
        }
        if (page.entries.length === 0 || page.eof) st.eof = true;
      }
    }
  } catch (e) {
    return fail(ntStatusOf(e));
  }
  if (chunks.length === 0) return fail(first ? NT.NO_SUCH_FILE : STATUS.NO_MORE_FILES);
  const output = Buffer.concat(chunks);
  return { resp: srv.response(conn, h, 0, (w) => encodeOutputResponse(w, output)) };
}

/**
 * The fixed part of the variable-length classes (MS-SMB2 3.3.5.20.1): a buffer below it is
 * INFO_LENGTH_MISMATCH, one above it gets what fits and BUFFER_OVERFLOW. The sizes are Windows',
 * as smbtorture smb2.getinfo.q*_buffercheck records them: All 104, Stream 32, Name and
 * NormalizedName 4; FileFsVolume 24, FileFsAttribute 16.
 */
const FIXED_PART_FILE: ReadonlyMap<number, number> = new Map([[FileInfoClass.All, 104], [FileInfoClass.Stream, 32], [FileInfoClass.Name, 4], [FileInfoClass.NormalizedName, 4]]);
const FIXED_PART_FS: ReadonlyMap<number, number> = new Map([[1, 24], [5, 16]]);

async function queryInfo(srv: SmbServer, conn: Conn, h: Smb2Header, el: Buffer, view: Session, openOf: OpenOf): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeQueryInfoRequest(el));
  if (!d.ok) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const o = openOf(q.fileId);
  if (!o) return fail(STATUS.FILE_CLOSED);
  if (!o.handle || o.tree.share === undefined) return fail(NT.NOT_SUPPORTED);
  if (q.infoType === InfoType.SECURITY) return querySecurity(srv, conn, h, q, o, view);
  let out: Buffer | undefined;
  let variable = false;
  let fixed = 0;
  try {
    if (q.infoType === InfoType.FILE) {
      const a = await view.fstat(o.handle);
      const name = o.handle.path === '/' ? '\\' : o.handle.path.replace(/\//g, '\\');
      // No 8.3 short names are kept; FileAlternateNameInformation falls to NOT_SUPPORTED, which
      // smbclient's allinfo tolerates (OBJECT_NAME_NOT_FOUND, NTFS's answer with 8.3 names off,
      // makes it stop).
      out = fileInfo(q.infoClass, a, { deletePending: o.deletePending, accessMask: o.grantedAccess, name, serial: volumeSerial(o.tree.share), dialect311: conn.dialect === Dialect.SMB3_1_1 });
      variable = VARIABLE_FILE_CLASSES.has(q.infoClass);
      fixed = FIXED_PART_FILE.get(q.infoClass) ?? 0;
    } else if (q.infoType === InfoType.FILESYSTEM) {
      const s = await view.statfs(o.tree.share);
      out = fsInfo(q.infoClass, s, { label: o.tree.share, serial: volumeSerial(o.tree.share) });
      variable = VARIABLE_FS_CLASSES.has(q.infoClass);
      fixed = FIXED_PART_FS.get(q.infoClass) ?? 0;
    }
  } catch (e) {
    return fail(ntStatusOf(e));
  }
  if (!out) return fail(NT.NOT_SUPPORTED);
  if (out.length > q.outputBufferLength) {
    if (!variable || q.outputBufferLength < fixed) return fail(NT.INFO_LENGTH_MISMATCH);
    const part = out.subarray(0, q.outputBufferLength);
    return { resp: srv.response(conn, h, STATUS.BUFFER_OVERFLOW, (w) => encodeOutputResponse(w, part)) };
  }
  const body = out;
  return { resp: srv.response(conn, h, 0, (w) => encodeOutputResponse(w, body)) };
}

async function setInfo(srv: SmbServer, conn: Conn, h: Smb2Header, el: Buffer, view: Session, openOf: OpenOf): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeSetInfoRequest(el));
  if (!d.ok) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const o = openOf(q.fileId);
  if (!o) return fail(STATUS.FILE_CLOSED);
  if (q.infoType === InfoType.SECURITY && o.handle && o.tree.share !== undefined) return setSecurity(srv, conn, h, q, o, view);
  if (!o.handle || o.tree.share === undefined || q.infoType !== InfoType.FILE) return fail(NT.NOT_SUPPORTED);
  const b = q.buffer;
  const handle = o.handle;
  const share = o.tree.share;
  try {
    switch (q.infoClass) {
      case FileInfoClass.Basic: {
        if (b.length < 36) return fail(NT.INFO_LENGTH_MISMATCH);
        if (!(o.grantedAccess & Access.WRITE_ATTRIBUTES)) return fail(STATUS.ACCESS_DENIED);
        // 0 leaves a time as it is; -1 (stop updating it on this handle) too, for now.
        const t = (at: number): bigint | undefined => {
          const v = b.readBigUInt64LE(at);
          return v === 0n || v === 0xffff_ffff_ffff_ffffn || v === 0xffff_ffff_ffff_fffen ? undefined : fromFileTime(v);
        };
        const birth = t(0), atime = t(8), mtime = t(16), ctime = t(24);
        const attrs = b.readUInt32LE(32);
        // TEMPORARY is for files only (MS-FSA 2.1.5.14.2; smbtorture smb2.create.dosattr_tmp_dir).
        if (o.kind === 'dir' && attrs & FILE_ATTRIBUTE_TEMPORARY) return fail(STATUS.INVALID_PARAMETER);
        const set = {
          ...(birth !== undefined ? { birthtimeNs: birth } : {}),
          ...(atime !== undefined ? { atimeNs: atime } : {}),
          ...(mtime !== undefined ? { mtimeNs: mtime } : {}),
          ...(ctime !== undefined ? { ctimeNs: ctime } : {}),
          ...(attrs !== 0 ? { winAttributes: attrs & SETTABLE_WIN_ATTRS } : {}),
        };
        if (Object.keys(set).length > 0) await view.fsetattr(handle, set);
        break;
      }
      case FileInfoClass.EndOfFile: {
        if (b.length < 8) return fail(NT.INFO_LENGTH_MISMATCH);
        if (!(o.grantedAccess & Access.WRITE_DATA)) return fail(STATUS.ACCESS_DENIED);
        if (o.kind !== 'file') return fail(STATUS.INVALID_PARAMETER);
        const size = b.readBigUInt64LE(0);
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) return fail(STATUS.INVALID_PARAMETER);
        await view.fsetattr(handle, { size: Number(size) });
        break;
      }
      case FileInfoClass.Allocation:
      case FileInfoClass.Position:
        // Allocation is the backend's (sizes rounded to 4 KiB); the position is the client's.
        break;
      case FileInfoClass.Rename: {
        if (!(o.grantedAccess & Access.DELETE)) return fail(STATUS.ACCESS_DENIED);
        // FILE_RENAME_INFORMATION_TYPE_2 (MS-FSCC 2.4.42.2): ReplaceIfExists, 7 reserved, RootDirectory 8, length 4, name.
        if (b.length < 20) return fail(NT.INFO_LENGTH_MISMATCH);
        const len = b.readUInt32LE(16);
        if (20 + len > b.length || len & 1) return fail(STATUS.INVALID_PARAMETER);
        const toName = b.subarray(20, 20 + len).toString('utf16le');
        const named = streamlessPath(toName);
        const to = named === undefined ? undefined : resolveDots(named);
        if (to === undefined || to === '/' || refusedName(lastComponent(toName))) return fail(NT.OBJECT_NAME_INVALID);
        await view.rename(share, handle.path, to, { replace: b[0] !== 0, through: handle });
        break;
      }
      case FileInfoClass.Disposition:
      case FileInfoClass.DispositionEx: {
        if (b.length < 1) return fail(NT.INFO_LENGTH_MISMATCH);
        if (!(o.grantedAccess & Access.DELETE)) return fail(STATUS.ACCESS_DENIED);
        const pending = q.infoClass === FileInfoClass.Disposition ? b[0] !== 0 : b.length >= 4 && (b.readUInt32LE(0) & 0x1) !== 0;
        // The share's root is never deleted, empty or not (NTFS: a volume's root cannot be).
        if (pending && handle.path === '/') return fail(STATUS.ACCESS_DENIED);
        // A read-only file or directory cannot be marked (MS-FSA 2.1.5.15.3).
        if (pending && (await view.fstat(handle)).winAttributes & WinAttr.READONLY) return fail(NT.CANNOT_DELETE);
        if (pending && o.kind === 'dir') {
          // A non-empty directory cannot be marked (MS-FSA 2.1.5.14.3).
          const page = await view.readdirById(share, handle.fileId, { limit: 1 });
          if (page.entries.length > 0) return fail(NT.DIRECTORY_NOT_EMPTY);
        }
        await view.setDeleteOnClose(handle, pending);
        o.deletePending = pending;
        break;
      }
      default:
        return fail(NT.NOT_SUPPORTED);
    }
  } catch (e) {
    return fail(ntStatusOf(e));
  }
  return { resp: srv.response(conn, h, 0, encodeSetInfoResponse) };
}

/** srvsvc over a pipe: one PDU in, one PDU out (NetrShareEnumAll, NetrShareGetInfo at level 1). */
function rpc(srv: SmbServer, sess: SmbSession, input: Buffer): Buffer {
  const d = tryDecode(() => decodePdu(input));
  if (!d.ok) return encodeBindNak(input.length >= 16 ? input.readUInt32LE(12) : 0);
  const pdu = d.value;
  if (pdu.kind === 'bind') return encodeBindAck(pdu.pdu, bindResults(pdu.pdu, [SYNTAX.SRVSVC]), '\\PIPE\\srvsvc', 0x12345);
  if (pdu.kind !== 'request') return encodeFault(pdu.header.callId, 0, FaultStatus.PROTO_ERROR);
  const q = pdu.pdu;
  const shares: ShareInfo1[] = [
    ...srv.sessions.sharesFor(sess.root!.principal, 'smb').map((name) => ({ name, type: 0 /* STYPE_DISKTREE */, remark: '' })),
    { name: 'IPC$', type: 0x8000_0003 /* STYPE_IPC | STYPE_SPECIAL */, remark: 'IPC Service' },
  ];
  if (q.opnum === SrvsvcOpnum.NetrShareEnumAll) {
    const a = tryDecode(() => decodeShareEnumAll(q.stub));
    if (!a.ok) return encodeFault(q.header.callId, q.contextId, FaultStatus.PROTO_ERROR);
    return Buffer.concat(encodeResponse(q, encodeShareEnumAllResponse(a.value.level === 1 ? shares : [], a.value.resumeHandle !== undefined, a.value.level === 1 ? WERR.OK : WERR.INVALID_LEVEL)));
  }
  if (q.opnum === SrvsvcOpnum.NetrShareGetInfo) {
    const a = tryDecode(() => decodeShareGetInfo(q.stub));
    if (!a.ok) return encodeFault(q.header.callId, q.contextId, FaultStatus.PROTO_ERROR);
    const s = shares.find((x) => x.name.toLowerCase() === a.value.netName.toLowerCase());
    return Buffer.concat(encodeResponse(q, encodeShareGetInfoResponse(s, s ? WERR.OK : WERR.NET_NAME_NOT_FOUND)));
  }
  return encodeFault(q.header.callId, q.contextId, FaultStatus.OP_RNG_ERROR);
}
