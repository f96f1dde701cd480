/** The VfsError → nfsstat4 table (protocols/nfs/errors.ts): every code maps to a defined status; contexts. */
import { describe, expect, it } from 'vitest';
import { nfsstatOf } from '../../protocols/nfs/errors.ts';
import { NFS4ERR } from '../../protocols/nfs/nfs4-types.ts';
import { VFS_ERROR_CODES, VfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

const DEFINED = new Set<number>(Object.values(NFS4ERR));

describe('nfsstatOf', () => {
  it('maps every VfsError code to a defined, non-OK nfsstat4', () => {
    for (const code of Object.keys(VFS_ERROR_CODES) as VfsErrorCode[]) {
      const s = nfsstatOf(new VfsError(code));
      expect(DEFINED.has(s), code).toBe(true);
      expect(s, code).not.toBe(NFS4ERR.OK);
    }
  });

  it('maps the common codes as clients expect', () => {
    const m = (c: VfsErrorCode) => nfsstatOf(new VfsError(c));
    expect([m('ENOENT'), m('EEXIST'), m('ENOTDIR'), m('EISDIR'), m('ENOTEMPTY')]).toEqual([
      NFS4ERR.NOENT, NFS4ERR.EXIST, NFS4ERR.NOTDIR, NFS4ERR.ISDIR, NFS4ERR.NOTEMPTY,
    ]);
    expect([m('EACCES'), m('EROFS'), m('ESTALE'), m('EBADCOOKIE'), m('EGRACE'), m('ESHARING')]).toEqual([
      NFS4ERR.ACCESS, NFS4ERR.ROFS, NFS4ERR.STALE, NFS4ERR.BAD_COOKIE, NFS4ERR.GRACE, NFS4ERR.SHARE_DENIED,
    ]);
    expect([m('EBUSY'), m('ETIMEDOUT')]).toEqual([NFS4ERR.DELAY, NFS4ERR.DELAY]);
  });

  it('depends on the operation where the RFCs do', () => {
    expect(nfsstatOf(new VfsError('ELOCKED'))).toBe(NFS4ERR.LOCKED);
    expect(nfsstatOf(new VfsError('ELOCKED'), 'lock')).toBe(NFS4ERR.DENIED);
    expect(nfsstatOf(new VfsError('ERANGE'))).toBe(NFS4ERR.INVAL);
    expect(nfsstatOf(new VfsError('ERANGE'), 'xattr')).toBe(NFS4ERR.XATTR2BIG);
  });

  it('answers NFS4ERR_IO for anything that is not a VfsError', () => {
    expect(nfsstatOf(new Error('bug'))).toBe(NFS4ERR.IO);
    expect(nfsstatOf(undefined)).toBe(NFS4ERR.IO);
  });
});
