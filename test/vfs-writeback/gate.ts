/**
 * A backend wrapper for write-back tests: content uploads (writer commits, except the empty
 * creates) can be held at a gate, made to fail with a chosen code, and are counted. Everything else
 * passes straight through.
 */
import type { Backend, BackendWriter } from '../../src/vfs/backend.ts';
import { VfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

export interface GatedBackend {
  backend: Backend;
  /** Commits wait while closed. */
  close(): void;
  open(): void;
  /** The next `times` commits (or all, with Infinity) fail with `code`; fail(undefined) stops. */
  fail(code: VfsErrorCode | undefined, times?: number): void;
  commits: number;
  /** Commits currently waiting at the gate. */
  waiting: number;
}

export function gate(inner: Backend): GatedBackend {
  let release: (() => void) | undefined;
  let wait: Promise<void> = Promise.resolve();
  let failures: { code: VfsErrorCode; left: number } | undefined;
  const g: GatedBackend = {
    backend: undefined as unknown as Backend,
    close() {
      if (release) return;
      wait = new Promise((r) => (release = r));
    },
    open() {
      const r = release;
      release = undefined;
      wait = Promise.resolve();
      r?.();
    },
    fail(code, times = 1) {
      failures = code === undefined ? undefined : { code, left: times };
    },
    commits: 0,
    waiting: 0,
  };
  const wrapWriter = (w: BackendWriter): BackendWriter => ({
    write: (c) => w.write(c),
    abort: () => w.abort(),
    async commit(meta) {
      g.waiting++;
      try {
        await wait;
      } finally {
        g.waiting--;
      }
      if (failures && failures.left > 0) {
        failures.left--;
        await w.abort();
        throw new VfsError(failures.code, 'injected upload failure');
      }
      const st = await w.commit(meta);
      g.commits++;
      return st;
    },
  });
  g.backend = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'createWriter') {
        // Creates of empty files (sizeHint 0: Vfs.createEmpty) pass: only content uploads are gated.
        return async (path: string, o?: Parameters<Backend['createWriter']>[1]) => {
          const w = await target.createWriter(path, o);
          return o?.sizeHint === 0 ? w : wrapWriter(w);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return g;
}

/** Polls `cond` every 10 ms until true; throws after `ms` (a hang guard, not a speed assertion). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
