/**
 * Per-file change counters that never go backwards, without a database write per change.
 *
 * A value is `(bootGeneration << 40) | seq`, where seq comes from ONE process-wide sequence. The
 * boot generation is persisted and increases at every start, so every value handed out after a
 * restart is larger than any value handed out before it; within a run, each bump takes the next
 * seq. A file whose entry was evicted from the bounded table simply gets a fresh (larger) value on
 * its next stat: clients may re-validate a cache once, but never see the counter go back.
 *
 * Outside changes (a file edited directly on disk, an object rewritten by another S3 client) are
 * noticed by comparing a signature of the backend stat (mtime, ctime, size, native id) with the last
 * one seen: a different signature bumps the counter.
 */
import { LRUCache } from 'lru-cache';
import type { BackendStat } from './backend.ts';
import type { FileId } from './types.ts';

interface Entry {
  change: bigint;
  /**
   * Signature of the last backend stat seen (its fields, compared one by one: building a string of
   * three bigints cost ~2 µs per stat, a tenth of a PROPFIND entry); undefined after our own change
   * (re-learned without a bump).
   */
  sig: Signature | undefined;
}

interface Signature {
  mtimeNs: bigint;
  ctimeNs: bigint;
  size: number;
  nativeId: string | undefined;
}

function signatureOf(st: BackendStat): Signature {
  return { mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, size: st.size, nativeId: st.nativeId };
}

function sameSignature(a: Signature, st: BackendStat): boolean {
  return a.mtimeNs === st.mtimeNs && a.ctimeNs === st.ctimeNs && a.size === st.size && a.nativeId === st.nativeId;
}

const SEQ_BITS = 40n;

export class ChangeTracker {
  private readonly base: bigint;
  private seq = 0n;
  private readonly entries: LRUCache<FileId, Entry>;

  constructor(bootGeneration: number, maxEntries = 250_000) {
    this.base = BigInt(bootGeneration) << SEQ_BITS;
    // maxSize (not max): the same bound, but storage grows with use instead of being allocated up front.
    this.entries = new LRUCache({ maxSize: maxEntries, sizeCalculation: () => 1 });
  }

  private next(): bigint {
    this.seq++;
    return this.base | this.seq;
  }

  /** The counter for a file, given its current backend stat. */
  observe(id: FileId, stat: BackendStat): bigint {
    const e = this.entries.get(id);
    if (!e) {
      const fresh = { change: this.next(), sig: signatureOf(stat) };
      this.entries.set(id, fresh);
      return fresh.change;
    }
    if (e.sig === undefined) e.sig = signatureOf(stat);
    else if (!sameSignature(e.sig, stat)) {
      e.sig = signatureOf(stat);
      e.change = this.next();
    }
    return e.change;
  }

  /** Records a change made through Portico; returns the new value. */
  bump(id: FileId): bigint {
    const change = this.next();
    this.entries.set(id, { change, sig: undefined });
    return change;
  }

  forget(id: FileId): void {
    this.entries.delete(id);
  }
}
