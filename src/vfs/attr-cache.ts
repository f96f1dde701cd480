/**
 * Attributes and name lookups by id for the id-addressed front-ends (NFS, SMB, FUSE), which send a
 * LOOKUP, GETATTR or QUERY_INFO for nearly every file operation: a warm entry answers from memory
 * instead of a backend round trip (a stat through libuv's thread pool costs ~20-50 µs of latency).
 *
 * - `attrs`: id -> the attributes last seen, for `ttlMs`. Every change made through Portico drops
 *   the entries it affects at once (the file, and the parent directory of a namespace change: see
 *   Vfs.emit and Vfs.write), or — a file created, removed or renamed in a directory — updates the
 *   directory's in place (touchDir), so a client never reads back stale attributes of its own change;
 *   changes made outside Portico show within `ttlMs` (nfs-ganesha's mdcache and Samba's stat cache
 *   make the same trade). ttlMs 0 turns the cache off.
 * - `names`: (directory id, name key) -> child id, so a warm LOOKUP needs no path walk and no
 *   resolution (on case-insensitive shares over case-sensitive backends a miss would otherwise scan
 *   the directory). A directory's names are dropped whenever its membership changes through
 *   Portico; an entry is used only while the child's attributes are also cached, so outside
 *   changes show within the same ttlMs.
 * Both are bounded (LRU).
 */
import type { LRUCache } from 'lru-cache';
import { KeptLru } from '../util/kept-lru.ts';
import type { FileAttr, FileId } from './types.ts';

export const ATTR_CACHE_TTL_MS = 1000;
const MAX_ATTRS = 100_000;
const MAX_DIRS = 10_000;
const MAX_NAMES_PER_DIR = 10_000;
/** KeptLru's placeholder key (ids are positive) and value: a delete never empties a cache (O(max)). */
const SPARE_ID: FileId = -1n;
const SPARE_ATTR = Object.freeze({ id: SPARE_ID }) as FileAttr;

export class AttrCache {
  readonly ttlMs: number;
  private readonly attrs: LRUCache<FileId, FileAttr> | undefined;
  private readonly names: LRUCache<FileId, Map<string, FileId>> | undefined;

  constructor(ttlMs = ATTR_CACHE_TTL_MS) {
    this.ttlMs = ttlMs;
    if (ttlMs <= 0) return;
    this.attrs = new KeptLru<FileId, FileAttr>({ max: MAX_ATTRS, ttl: ttlMs, ttlAutopurge: false, updateAgeOnGet: false }, SPARE_ID, SPARE_ATTR);
    this.names = new KeptLru<FileId, Map<string, FileId>>({ max: MAX_DIRS }, SPARE_ID, new Map());
  }

  get(id: FileId): FileAttr | undefined {
    return this.attrs?.get(id);
  }

  set(attr: FileAttr): void {
    this.attrs?.set(attr.id, attr);
  }

  /** A cached child of a directory, by name key, whose attributes are still cached. */
  child(dirId: FileId, key: string): FileAttr | undefined {
    const id = this.names?.get(dirId)?.get(key);
    return id === undefined ? undefined : this.attrs!.get(id);
  }

  setChild(dirId: FileId, key: string, attr: FileAttr): void {
    if (!this.names) return;
    let m = this.names.get(dirId);
    if (!m) this.names.set(dirId, (m = new Map()));
    else if (m.size >= MAX_NAMES_PER_DIR) m.clear();
    m.set(key, attr.id);
    this.attrs!.set(attr.id, attr);
  }

  /** A change through Portico to a file (its attributes). */
  drop(id: FileId): void {
    this.attrs?.delete(id);
  }

  /**
   * A file (not a directory: the parent's link count would move) was created, removed or renamed
   * in the directory `id` through Portico: the names' entries go, and the directory's cached
   * attributes, when there are any, are replaced by `update(attrs)` for what is left of their
   * time (never longer: outside changes still show within ttlMs of the last stat). Returns whether
   * they were kept.
   */
  touchDir(id: FileId, keys: readonly string[], update: (a: FileAttr) => FileAttr): boolean {
    const m = this.names?.get(id);
    if (m) for (const k of keys) m.delete(k);
    const a = this.attrs?.get(id);
    if (a === undefined) return false;
    const ttl = this.attrs!.getRemainingTTL(id);
    if (!(ttl > 0)) {
      this.attrs!.delete(id);
      return false;
    }
    this.attrs!.set(id, update(a), { ttl });
    return true;
  }

  /** A directory's membership changed: its attributes and its name map. */
  dropDir(id: FileId): void {
    this.attrs?.delete(id);
    this.names?.delete(id);
  }

  clear(): void {
    this.attrs?.clear();
    this.names?.clear();
  }
}
