import { describe, expect, it } from 'vitest';
import { isVfsError } from '../../src/vfs/errors.ts';
import { SHARE_ALL, ShareModeTable, nfsShareToAccess } from '../../src/locks/share-modes.ts';
import type { Access, OpenRecord } from '../../src/locks/share-modes.ts';

const F = 42n;
let seq = 0;

function bits(n: number): Access {
  return { read: (n & 1) !== 0, write: (n & 2) !== 0, delete: (n & 4) !== 0 };
}

function rec(access: Access, share: Access, extra: Partial<OpenRecord> = {}): OpenRecord {
  return { handleId: `h${++seq}`, fileId: F, owner: 'o', access, share, deleteOnClose: false, ...extra };
}

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isVfsError(e)) throw e;
    return e.code;
  }
}

/**
 * MS-FSA 2.1.5.1.2.2 written out as a truth table over FILE_SHARE_* and the data-access bits of the
 * first (existing) and second (new) open. Deliberately independent of the implementation.
 */
function msFsaAllows(firstAccess: number, firstShare: number, secondAccess: number, secondShare: number): boolean {
  const READ = 1;
  const WRITE = 2;
  const DELETE = 4;
  // Only opens with FILE_READ_DATA/EXECUTE/WRITE_DATA/APPEND_DATA/DELETE take part, on either side.
  if (secondAccess === 0 || firstAccess === 0) return true;
  for (const bit of [READ, WRITE, DELETE]) {
    if (secondAccess & bit && !(firstShare & bit)) return false; // existing open does not share what the new one wants
    if (firstAccess & bit && !(secondShare & bit)) return false; // new open denies what the existing one has
  }
  return true;
}

describe('ShareModeTable share access matrix (MS-FSA 2.1.5.1.2.2)', () => {
  it('matches the truth table for all 4096 combinations of two opens', () => {
    let checked = 0;
    let violations = 0;
    for (let a1 = 0; a1 < 8; a1++)
      for (let s1 = 0; s1 < 8; s1++)
        for (let a2 = 0; a2 < 8; a2++)
          for (let s2 = 0; s2 < 8; s2++) {
            const t = new ShareModeTable();
            const first = rec(bits(a1), bits(s1));
            t.open(first);
            const second = rec(bits(a2), bits(s2));
            const code = codeOf(() => t.open(second));
            const allowed = msFsaAllows(a1, s1, a2, s2);
            expect({ a1, s1, a2, s2, code }).toEqual({ a1, s1, a2, s2, code: allowed ? undefined : 'ESHARING' });
            // A refused open leaves the table untouched; an accepted one is visible.
            expect(t.opensOn(F).map((o) => o.handleId)).toEqual(allowed ? [first.handleId, second.handleId] : [first.handleId]);
            checked++;
            if (!allowed) violations++;
          }
    expect(checked).toBe(4096);
    expect(violations).toBeGreaterThan(1000);
  });

  it('checks a new open against every existing open', () => {
    const t = new ShareModeTable();
    t.open(rec(bits(1), bits(7))); // reader sharing everything
    t.open(rec(bits(1), bits(1))); // reader denying write+delete
    expect(codeOf(() => t.open(rec(bits(2), bits(7))))).toBe('ESHARING');
    expect(codeOf(() => t.open(rec(bits(1), bits(7))))).toBeUndefined();
    expect(t.opensOn(F)).toHaveLength(3);
  });

  it('attribute-only opens never conflict, even against a deny-all open', () => {
    const t = new ShareModeTable();
    t.open(rec(bits(7), bits(0)));
    expect(codeOf(() => t.open(rec(bits(0), bits(0))))).toBeUndefined();
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBe('ESHARING');
  });

  it('close frees the share reservation', () => {
    const t = new ShareModeTable();
    const a = rec(bits(2), bits(0));
    t.open(a);
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBe('ESHARING');
    expect(t.close(a.handleId)).toEqual({ fileId: F, last: true, deletePending: false });
    expect(t.close(a.handleId)).toBeUndefined();
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBeUndefined();
  });

  it('maps NFSv4 share_access/share_deny onto the same table', () => {
    const t = new ShareModeTable();
    const denyWrite = nfsShareToAccess(1, 2); // ACCESS_READ, DENY_WRITE
    expect(denyWrite).toEqual({ access: { read: true, write: false, delete: false }, share: { read: true, write: false, delete: true } });
    t.open(rec(denyWrite.access, denyWrite.share));
    const w = nfsShareToAccess(2, 0);
    expect(codeOf(() => t.open(rec(w.access, w.share)))).toBe('ESHARING');
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBeUndefined();
  });

  it('rejects duplicate handle ids and malformed records', () => {
    const t = new ShareModeTable();
    const a = rec(bits(1), SHARE_ALL);
    t.open(a);
    expect(codeOf(() => t.open({ ...a }))).toBe('EINVAL');
    expect(codeOf(() => t.open({ ...rec(bits(1), SHARE_ALL), fileId: 1 as unknown as bigint }))).toBe('EINVAL');
  });
});

describe('ShareModeTable delete pending', () => {
  it('SetInfo disposition: pending blocks new opens, last close reports delete', () => {
    const t = new ShareModeTable();
    const a = rec(bits(5), SHARE_ALL);
    const b = rec(bits(1), SHARE_ALL);
    t.open(a);
    t.open(b);
    t.setDeletePending(F, a.handleId, true);
    expect(t.isDeletePending(F)).toBe(true);
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBe('EDELETEPENDING');
    expect(codeOf(() => t.open(rec(bits(0), SHARE_ALL)))).toBe('EDELETEPENDING');
    expect(t.close(a.handleId)).toEqual({ fileId: F, last: false, deletePending: true });
    expect(t.close(b.handleId)).toEqual({ fileId: F, last: true, deletePending: true });
    // The file is gone; a new file under the same id starts clean.
    expect(t.isDeletePending(F)).toBe(false);
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBeUndefined();
  });

  it('disposition can be cleared again before close', () => {
    const t = new ShareModeTable();
    const a = rec(bits(4), SHARE_ALL);
    t.open(a);
    t.setDeletePending(F, a.handleId, true);
    t.setDeletePending(F, a.handleId, false);
    expect(t.isDeletePending(F)).toBe(false);
    expect(t.close(a.handleId)).toEqual({ fileId: F, last: true, deletePending: false });
  });

  it('needs delete access on the handle, and the handle must be open on that file', () => {
    const t = new ShareModeTable();
    const a = rec(bits(3), SHARE_ALL);
    t.open(a);
    expect(codeOf(() => t.setDeletePending(F, a.handleId, true))).toBe('EACCES');
    expect(codeOf(() => t.setDeletePending(F, 'nope', true))).toBe('EBADF');
    expect(codeOf(() => t.setDeletePending(7n, a.handleId, true))).toBe('EBADF');
    expect(t.isDeletePending(F)).toBe(false);
  });

  it('delete-on-close marks the file pending when that handle closes', () => {
    const t = new ShareModeTable();
    const doc = rec(bits(5), SHARE_ALL, { deleteOnClose: true });
    const other = rec(bits(1), SHARE_ALL);
    t.open(doc);
    t.open(other);
    expect(t.isDeletePending(F)).toBe(false);
    expect(t.close(doc.handleId)).toEqual({ fileId: F, last: false, deletePending: true });
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBe('EDELETEPENDING');
    expect(t.close(other.handleId)).toEqual({ fileId: F, last: true, deletePending: true });
  });

  it('delete-on-close without delete access is refused', () => {
    const t = new ShareModeTable();
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL, { deleteOnClose: true })))).toBe('EACCES');
    expect(t.opensOn(F)).toEqual([]);
  });

  it('checkDelete fails while a data open does not share delete', () => {
    const t = new ShareModeTable();
    t.checkDelete(F);
    const attrOnly = rec(bits(0), bits(0));
    t.open(attrOnly);
    t.checkDelete(F);
    const sharesDelete = rec(bits(3), SHARE_ALL);
    t.open(sharesDelete);
    t.checkDelete(F);
    const noDelete = rec(bits(1), bits(3));
    t.open(noDelete);
    expect(codeOf(() => t.checkDelete(F))).toBe('ESHARING');
    t.close(noDelete.handleId);
    t.checkDelete(F);
  });

  it('forget drops opens and pending state of a replaced file', () => {
    const t = new ShareModeTable();
    const a = rec(bits(7), bits(0));
    t.open(a);
    t.setDeletePending(F, a.handleId, true);
    t.forget(F);
    expect(t.opensOn(F)).toEqual([]);
    expect(t.isDeletePending(F)).toBe(false);
    expect(t.close(a.handleId)).toBeUndefined();
    expect(codeOf(() => t.open(rec(bits(7), bits(0))))).toBeUndefined();
  });

  it('opensOn returns copies', () => {
    const t = new ShareModeTable();
    t.open(rec(bits(1), bits(0)));
    const [o] = t.opensOn(F);
    o!.share.read = true;
    expect(codeOf(() => t.open(rec(bits(1), SHARE_ALL)))).toBe('ESHARING');
  });
});

describe('ShareModeTable.downgrade (NFS OPEN_DOWNGRADE)', () => {
  it('narrows access and widens sharing in place; an open refused before comes in; never the other way', () => {
    const t = new ShareModeTable();
    const events: string[] = [];
    t.onChange((ev) => events.push(`${ev.type}:${ev.rec.access.write}:${ev.rec.share.write}`));
    const a = rec(bits(3), bits(5));
    t.open(a);
    expect(codeOf(() => t.open(rec(bits(2), SHARE_ALL)))).toBe('ESHARING');
    expect(codeOf(() => t.downgrade(a.handleId, bits(7), bits(5)))).toBe('EINVAL');
    expect(codeOf(() => t.downgrade(a.handleId, bits(1), bits(1)))).toBe('EINVAL');
    expect(codeOf(() => t.downgrade('nope', bits(1), SHARE_ALL))).toBe('EBADF');
    t.downgrade(a.handleId, bits(1), SHARE_ALL);
    expect(t.opensOn(F).find((o) => o.handleId === a.handleId)).toMatchObject({ access: bits(1), share: SHARE_ALL });
    expect(codeOf(() => t.open(rec(bits(2), SHARE_ALL)))).toBeUndefined();
    // Told as an open again, so records kept for reclaim hold the narrowed modes.
    expect(events.slice(0, 2)).toEqual(['open:true:false', 'open:false:true']);
  });
});
