/**
 * OPEN (RFC 8881 §18.16; RFC 7530 §16.16): CLAIM_NULL (a name in the current directory), CLAIM_FH
 * (4.1: the current file) and CLAIM_PREVIOUS (a reclaim in the grace period, Session.reclaimOpenById);
 * creates UNCHECKED, GUARDED, EXCLUSIVE4 and EXCLUSIVE4_1 through Session.openIn. Share access and
 * deny become the core's share modes (OpenOptions.access/share), so an NFS deny conflicts with an
 * SMB or WebDAV holder. Delegations are never granted.
 *
 * One open state per (open-owner, file) (§9.1.4): a second OPEN by the owner adds a core handle and
 * bumps the stateid's seqid. The open-owner string the core sees is `<clientid>:<owner>`.
 *
 * Exclusive creates keep their verifier in memory (server.exclusive) rather than in the file's
 * times, as Linux nfsd does: a retransmission after a restart finds EEXIST, which is what an
 * exclusive create of an existing name answers anyway.
 */
import type { Handle } from '../../../src/vfs/vfs.ts';
import type { OpenOptions, SetAttr } from '../../../src/vfs/types.ts';
import { VfsError } from '../../../src/vfs/errors.ts';
import { decodeAttrValues } from '../fattr4.ts';
import { CLAIM, CREATEMODE4, FATTR4, NFS4ERR, OP, OPEN4_RESULT, OPEN_DELEGATE, WND4 } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { OpenArgs, OpenResOk } from '../xdr4/open.ts';
import { bitmapOf, type ChangeInfo4, type Fattr4 } from '../xdr4/common.ts';
import { NfsServer, changeAround, clientView, fail, failWith, ok, stateidOf, type FileFh, type OpContext } from '../server/context.ts';
import type { NfsClient, OpenState } from '../server/state.ts';
import { setAttrOf } from './setattr.ts';

function clientOf(c: OpContext, clientid: bigint): NfsClient | number {
  if (c.minor > 0) return c.client ?? NFS4ERR.OP_NOT_IN_SESSION;
  const client = c.srv.state.clients.get(clientid);
  if (!client || !client.confirmed) return NFS4ERR.STALE_CLIENTID;
  client.lastRenew = Date.now();
  return client;
}

function openOptions(a: OpenArgs, client: NfsClient): OpenOptions {
  const acc = a.shareAccess & 3;
  return {
    access: { read: (acc & 1) !== 0, write: (acc & 2) !== 0, delete: false },
    share: { read: (a.shareDeny & 1) === 0, write: (a.shareDeny & 2) === 0, delete: true },
    owner: `${client.clientid}:${a.owner.owner.toString('hex')}`,
    expect: 'file',
  };
}

/** Settable createattrs for the core (mode at create; the rest by setattr after). */
async function createAttrs(c: OpContext, f: Fattr4 | undefined): Promise<{ ok: true; set: SetAttr; attrs: number[] } | { ok: false; status: number }> {
  if (!f || f.mask.length === 0) return { ok: true, set: {}, attrs: [] };
  const d = decodeAttrValues(f, { settable: true });
  if (!d.ok) return { ok: false, status: d.status };
  const bad = await c.srv.idmap.numeric(d.values);
  if (bad !== undefined) return { ok: false, status: bad };
  const s = setAttrOf(d.values);
  if (!s.ok) return s;
  return { ok: true, set: s.set, attrs: d.attrs };
}

export async function open(c: OpContext, a: OpenArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.OPEN, NFS4ERR.NOFILEHANDLE);
  const client = clientOf(c, a.owner.clientid);
  if (typeof client === 'number') return fail(OP.OPEN, client);
  if ((a.shareAccess & 3) === 0 || a.shareDeny > 3) return fail(OP.OPEN, NFS4ERR.INVAL);
  // The by-filehandle claims are 4.1's (RFC 8881 §18.16.1); 4.0 has no such arm.
  if (c.minor === 0 && a.claim.type >= CLAIM.FH) return fail(OP.OPEN, NFS4ERR.NOTSUPP);
  if (cur.kind === 'pseudo') return fail(OP.OPEN, a.claim.type === CLAIM.NULL ? NFS4ERR.ROFS : NFS4ERR.ISDIR);
  const view = clientView(c, client);
  const opts = openOptions(a, client);
  let h: Handle;
  let cinfo: ChangeInfo4 = { atomic: false, before: 0n, after: 0n };
  let attrSet: number[] = [];
  try {
    if (a.claim.type === CLAIM.NULL) {
      const dir = await c.view.getattrById(cur.share, cur.id);
      if (dir.type !== 'dir') return fail(OP.OPEN, dir.type === 'symlink' ? NFS4ERR.SYMLINK : NFS4ERR.NOTDIR);
      const name = a.claim.name;
      const how = a.create;
      if (!how) {
        // The open itself finds the name (no LOOKUP first: one gate call and, for a read-only
        // open, one open syscall instead of a stat, then an open); `expect: 'file'` refuses a
        // directory with EISDIR and a symlink with ELOOP, which are ISDIR and SYMLINK here.
        h = await view.openIn(cur.share, cur.id, name, opts);
        cinfo = { atomic: true, before: dir.change, after: dir.change };
      } else {
        const ca = await createAttrs(c, 'attrs' in how ? how.attrs : undefined);
        if (!ca.ok) return fail(OP.OPEN, ca.status);
        const exclusive = how.mode === CREATEMODE4.EXCLUSIVE || how.mode === CREATEMODE4.EXCLUSIVE4_1;
        const truncate = ca.set.size === 0;
        const disposition = how.mode === CREATEMODE4.UNCHECKED ? (truncate ? 'createOrTruncate' : 'openOrCreate') : 'create';
        const mode = ca.set.mode ?? 0o644;
        // An UNCHECKED create of an existing file applies none of createattrs but a zero size
        // (§18.16.3): the core's open says whether it created (Handle.created), so no lookup
        // before it, and no race with another client's create of the same name.
        let existed = false;
        try {
          const r = await changeAround(c, cur, () => view.openIn(cur.share, cur.id, name, { ...opts, disposition, mode }), dir.change);
          h = r.value;
          existed = !h.created;
          cinfo = r.cinfo;
          if (exclusive) {
            if (c.srv.exclusive.size >= NfsServer.MAX_EXCLUSIVE) c.srv.exclusive.delete(c.srv.exclusive.keys().next().value as bigint);
            c.srv.exclusive.set(h.fileId, (how as { verifier: Buffer }).verifier.toString('hex'));
          }
        } catch (e) {
          if (!(exclusive && e instanceof VfsError && e.code === 'EEXIST')) throw e;
          // A retransmitted exclusive create (same verifier) opens the file it created.
          const existing = await c.view.lookup(cur.share, cur.id, name);
          if (c.srv.exclusive.get(existing.id) !== (how as { verifier: Buffer }).verifier.toString('hex')) throw e;
          h = await view.openById(cur.share, existing.id, opts);
          cinfo = { atomic: true, before: dir.change, after: dir.change };
          existed = true;
        }
        const rest: SetAttr = { ...ca.set };
        delete rest.size;
        if (!existed && h.type === 'file' && Object.keys(rest).length > 0) {
          try {
            await view.fsetattr(h, rest);
          } catch (e) {
            await view.close(h).catch(() => {});
            throw e;
          }
        }
        attrSet = existed ? ca.attrs.filter((n) => n === FATTR4.SIZE && truncate) : ca.attrs;
      }
    } else if (a.claim.type === CLAIM.FH || a.claim.type === CLAIM.PREVIOUS) {
      if (a.create) return fail(OP.OPEN, NFS4ERR.INVAL);
      const attr = await c.view.getattrById(cur.share, cur.id);
      if (attr.type === 'dir') return fail(OP.OPEN, NFS4ERR.ISDIR);
      if (attr.type === 'symlink') return fail(OP.OPEN, NFS4ERR.SYMLINK);
      if (a.claim.type === CLAIM.PREVIOUS) {
        try {
          h = await view.reclaimOpenById(cur.share, cur.id, opts);
        } catch (e) {
          if (e instanceof VfsError && e.code === 'EINVAL') return fail(OP.OPEN, NFS4ERR.NO_GRACE);
          if (e instanceof VfsError && e.code === 'ENOENT') return fail(OP.OPEN, NFS4ERR.RECLAIM_BAD);
          throw e;
        }
      } else {
        h = await view.openById(cur.share, cur.id, opts);
      }
      cinfo = { atomic: true, before: attr.change, after: attr.change };
    } else {
      // Delegation claims: Portico grants no delegations, so there is none to claim under.
      return fail(OP.OPEN, c.minor > 0 ? NFS4ERR.BAD_STATEID : NFS4ERR.RECLAIM_BAD);
    }
  } catch (e) {
    return failWith(OP.OPEN, e);
  }
  const st = addOpen(c, client, cur, h, a);
  const file: FileFh = c.srv.fh.forFile(cur.exp, h.fileId) as FileFh;
  c.cur = file;
  c.currentStateid = stateidOf(st);
  const wants = a.shareAccess & 0xff00;
  const res: OpenResOk = {
    stateid: stateidOf(st),
    cinfo,
    rflags: OPEN4_RESULT.LOCKTYPE_POSIX,
    attrSet: bitmapOf(attrSet),
    delegation: c.minor > 0 && wants !== 0 ? { type: OPEN_DELEGATE.NONE_EXT, why: WND4.NOT_WANTED } : { type: OPEN_DELEGATE.NONE },
  };
  return ok(OP.OPEN, res);
}

function addOpen(c: OpContext, client: NfsClient, dir: FileFh, h: Handle, a: OpenArgs): OpenState {
  const ownerKey = a.owner.owner.toString('hex');
  const key = `${ownerKey}/${h.fileId}`;
  let st = client.opens.get(key);
  if (st && st.handles.every((x) => x.closed)) {
    c.srv.state.states.delete(st.key);
    client.opens.delete(key);
    st = undefined;
  }
  if (st) {
    st.handles.push(h);
    st.access |= a.shareAccess & 3;
    st.deny |= a.shareDeny;
    st.seqid++;
    return st;
  }
  const other = c.srv.state.newOther();
  st = {
    kind: 'open',
    other,
    key: other.toString('hex'),
    seqid: 1,
    client,
    share: dir.share,
    fileId: h.fileId,
    ownerKey,
    handles: [h],
    access: a.shareAccess & 3,
    deny: a.shareDeny,
    locks: new Set(),
  };
  // Keyed twice: by owner and file (upgrades), and by stateid (everything else).
  client.opens.set(key, st);
  c.srv.state.states.set(st.key, st);
  return st;
}

export function openKey(st: OpenState): string {
  return `${st.ownerKey}/${st.fileId}`;
}
