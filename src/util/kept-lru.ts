/**
 * An LRUCache that a delete never empties.
 *
 * lru-cache 11 resets a cache whose last entry goes (a delete(), or a get() that finds the only
 * entry stale) with its private #clear, which fill()s every slot preallocated for `max` entries.
 * Measured (Node 24, this machine): 760–990 µs per delete of the only entry at max 100,000,
 * against 1.4–2.8 µs while another entry remains. Loops that touch one file at a time (create,
 * write, close, stat, unlink: a build, an untar, rsync) emptied the VFS attribute cache
 * (src/vfs/attr-cache.ts) and the S3 metadata caches (backends/s3/meta-cache.ts) on nearly every
 * operation: 17% of the JS time of a FUSE small-file cycle on a local share, ~10% on S3.
 *
 * Decision: keep one placeholder entry (`spare`: a key no caller uses, no ttl, so never stale) so
 * that no delete removes the last entry. It is put in at construction and after clear(), and again
 * by a delete that would otherwise empty the cache (it is the least recently used entry, so a full
 * cache evicts it first). `size` does not count it. Iterators (keys(), entries(), ...) do show it:
 * pick a spare key that no caller's filter matches. Rejected: `maxSize` instead of `max` (the
 * arrays then grow to the high-water mark instead of being preallocated, but ttl tracking needs
 * the preallocated arrays), and patching lru-cache (a dependency's private method).
 */
import { LRUCache } from 'lru-cache';

export class KeptLru<K extends {}, V extends {}> extends LRUCache<K, V> {
  readonly #spare: K;
  readonly #spareValue: V;

  constructor(options: LRUCache.Options<K, V, unknown>, spare: K, spareValue: V) {
    super(options);
    this.#spare = spare;
    this.#spareValue = spareValue;
    this.#keep();
  }

  #keep(): void {
    // ttl 0: never stale, whatever the cache's default ttl.
    super.set(this.#spare, this.#spareValue, { ttl: 0 });
  }

  override get size(): number {
    return super.size - (super.has(this.#spare) ? 1 : 0);
  }

  override delete(k: K): boolean {
    if (k === this.#spare) return false;
    if (super.size === 1) this.#keep();
    return super.delete(k);
  }

  override clear(): void {
    super.clear();
    this.#keep();
  }
}
