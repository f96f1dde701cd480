/**
 * WebDAV locks outlive the gateway process: clients hold lock tokens for minutes or hours (Windows
 * and macOS refresh them) and expect them to still work after a restart. Locks are keyed by file
 * ids, which are persistent, so saved locks stay valid. Only locks with a timeout (WebDAV's) are
 * saved (LockManager.exportDurable); SMB, NFS and FUSE locks belong to connections that a restart
 * ends anyway (NFSv4 clients reclaim theirs in the grace period).
 *
 * Saved in the metadata store's kv table, on every lock change (debounced) and at shutdown, so a
 * crash loses at most the last DEBOUNCE_MS of lock changes.
 */
import type { Logger } from 'pino';
import type { MetadataStore } from '../store/metadata-store.ts';
import type { LockInfo, LockManager } from './lock-manager.ts';

const KEY = 'durable-locks-v1';
const DEBOUNCE_MS = 100;

/** JSON with bigints (file ids, ranges) as {"$n": "123"}. */
function encode(locks: LockInfo[]): string {
  return JSON.stringify(locks, (_k, v: unknown) => (typeof v === 'bigint' ? { $n: v.toString() } : v));
}

function decode(text: string): LockInfo[] {
  const out: unknown = JSON.parse(text, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const n = (v as { $n?: unknown }).$n;
      if (keys.length === 1 && typeof n === 'string' && /^\d{1,20}$/.test(n)) return BigInt(n);
    }
    return v;
  });
  if (!Array.isArray(out)) return [];
  // Saved before the style was renamed from 'webdav' to 'token' (the lock manager knows no protocols).
  for (const l of out as Array<{ style?: unknown }>) if (l !== null && typeof l === 'object' && l.style === 'webdav') l.style = 'token';
  return out as LockInfo[];
}

export class DurableLocks {
  private readonly locks: LockManager;
  private readonly store: MetadataStore;
  private readonly logger: Logger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(locks: LockManager, store: MetadataStore, logger?: Logger) {
    this.locks = locks;
    this.store = store;
    this.logger = logger;
  }

  /** Restores saved locks (expired ones are dropped) and starts saving changes. Returns how many came back. */
  start(): number {
    let restored = 0;
    const text = this.store.kvGet(KEY);
    if (text !== undefined) {
      try {
        const saved = decode(text);
        const before = this.locks.size;
        this.locks.importDurable(saved);
        restored = this.locks.size - before;
      } catch (err) {
        // A damaged entry must not stop the gateway: the locks are lost, which clients survive.
        this.logger?.warn({ err }, 'could not restore saved WebDAV locks');
      }
    }
    this.unsubscribe = this.locks.onChange((ev) => {
      if (ev.lock.style === 'token') this.schedule();
    });
    return restored;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save();
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  save(): void {
    try {
      this.store.kvSet(KEY, encode(this.locks.exportDurable()));
    } catch (err) {
      this.logger?.error({ err }, 'could not save WebDAV locks');
    }
  }

  /** Saves once more and stops listening (before the lock manager and the store close). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.save();
  }
}
