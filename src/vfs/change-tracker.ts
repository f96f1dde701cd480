/**
 * Change attributes and file identity, kept with each file's id row in the metadata store so that
 * neither moves at a restart or when a cache evicts the row (NFS clients revalidate every cached
 * page and directory by the change attribute; WebDAV ETags are built from it).
 *
 * A row holds its change value `chg` and the backend stat signature it was taken at (mtime, ctime,
 * size, and the backend's native id). On every stat:
 * - same signature -> the same value, no write;
 * - no signature yet (a new row, or just after a change made through Portico) -> the signature is
 *   learned, the value kept (a change through Portico already advanced it);
 * - a different signature -> the file changed outside Portico: the value advances by one.
 * A change through Portico advances the value by one and clears the signature (`bump`). Values are
 * per file and never go back: a file's `(id, chg)` pair names one state of one file.
 *
 * Identity. On backends whose native id names the file itself and survives its changes
 * (BackendCapabilities.nativeIdentity: local disks' device:inode:birth), a different native id at
 * the same name means that the file was replaced outside Portico (deleted
 * and created again, or an editor's save by rename): `observe` answers REPLACED and the VFS gives
 * the name a new id, so the old id is stale (ESTALE) instead of silently naming the new file, and
 * the new file does not inherit the old one's properties. Changes Portico makes that replace the
 * native id (an atomic content replace writes a new inode) are announced first with `expect`, which
 * forgets the known native id so that the next stat adopts the new one. On other backends (object
 * stores: the native id is the ETag, a version) a different native id is just a change.
 *
 * Writes join the metadata store's group commit (metadata-store.ts): a crash may lose the last few
 * milliseconds of them; the files' stats then differ from the stored signatures and their values
 * advance once more, which a client takes as "changed", never as "unchanged" when it was.
 */
import type { BackendStat } from './backend.ts';
import type { MetadataStore, NodeRow } from '../store/metadata-store.ts';

/** observe(): the name now holds another file (identity backends only). */
export const REPLACED = -1n;

function sameSignature(row: NodeRow, st: BackendStat): boolean {
  return row.sigM === st.mtimeNs && row.sigC === st.ctimeNs && Number(row.sigS) === st.size && row.native === (st.nativeId ?? null);
}

function learn(row: NodeRow, st: BackendStat): void {
  row.sigM = st.mtimeNs;
  row.sigC = st.ctimeNs;
  row.sigS = BigInt(st.size);
  row.native = st.nativeId ?? null;
}

/** Whether the stat shows another file than the row's known identity (identity backends). */
export function isReplaced(row: NodeRow, st: BackendStat): boolean {
  return row.native !== null && st.nativeId !== undefined && row.native !== st.nativeId;
}

/** Change-state columns for a row inserted with its first stat (one write instead of two). */
export function initialChange(st: BackendStat): Pick<NodeRow, 'chg' | 'sigM' | 'sigC' | 'sigS' | 'native'> {
  return { chg: 1n, sigM: st.mtimeNs, sigC: st.ctimeNs, sigS: BigInt(st.size), native: st.nativeId ?? null };
}

export class ChangeTracker {
  private readonly store: MetadataStore;

  constructor(store: MetadataStore) {
    this.store = store;
  }

  /**
   * The change value of a row given the file's current stat, or REPLACED when `identity` is set
   * and the native id shows another file at the name.
   */
  observe(row: NodeRow, st: BackendStat, identity: boolean): bigint {
    // The identity is checked even right after a change through Portico (no signature): only
    // expect() lets a new native id in.
    if (identity && isReplaced(row, st)) return REPLACED;
    if (row.sigM === null) {
      if (row.chg === 0n) row.chg = 1n;
      learn(row, st);
      this.store.saveChange(row);
      return row.chg;
    }
    if (sameSignature(row, st)) return row.chg;
    row.chg++;
    learn(row, st);
    this.store.saveChange(row);
    return row.chg;
  }

  /** A change made through Portico: advances the value; the next stat is learned without another. */
  bump(row: NodeRow): bigint {
    row.chg++;
    row.sigM = row.sigC = row.sigS = null;
    this.store.saveChange(row);
    return row.chg;
  }

  /**
   * Announces a change through Portico that may give the file a new native id (an atomic content
   * replace): until the next stat, a different native id is adopted, not taken for a replacement.
   */
  expect(row: NodeRow): void {
    if (row.sigM === null && row.native === null) return;
    row.sigM = row.sigC = row.sigS = null;
    row.native = null;
    this.store.saveChange(row);
  }
}
