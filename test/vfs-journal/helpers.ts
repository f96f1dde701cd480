/**
 * Shared set-up of the tree-move tests: a Vfs over one backend with its own state directory (so a
 * "restart" reopens the same metadata store), file helpers on the Vfs API, and a backend wrapper that
 * can hold, fail or count calls (a Proxy: the backend keeps its optional methods).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/vfs/backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import type { TreeMoveLogger, TreeMoveOptions } from '../../src/vfs/tree-move/index.ts';
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

export interface Env {
  vfs: Vfs;
  store: MetadataStore;
  stateDir: string;
  /** Closes handles, locks, tree moves and the store; keeps state and backend content. */
  stop(): Promise<void>;
}

export function openEnv(backend: Backend, o: { stateDir?: string; treeMoves?: TreeMoveOptions; caseSensitive?: boolean } = {}): Env {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'portico-treemove-'));
  const store = MetadataStore.open(stateDir);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), ...(o.treeMoves ? { treeMoves: o.treeMoves } : {}) });
  vfs.addVolume('s', buildVolumeStack(backend), { caseSensitive: o.caseSensitive ?? true });
  let stopped = false;
  return {
    vfs,
    store,
    stateDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const h of vfs.openHandles()) await vfs.close(h).catch(() => undefined);
      await vfs.treeMoves.close();
      vfs.locks.close();
      store.close();
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export const RW = { read: true, write: true, delete: false };
export const RO = { read: true, write: false, delete: false };

export async function put(vfs: Vfs, path: string, data: string | Buffer): Promise<void> {
  const w = await vfs.replaceContent('s', path, { owner: 'test' });
  await w.write(typeof data === 'string' ? Buffer.from(data) : data);
  await w.commit();
}

export async function get(vfs: Vfs, path: string): Promise<Buffer> {
  const h = await vfs.open('s', path, { access: RO, owner: 'test', expect: 'file' });
  try {
    const parts: Buffer[] = [];
    for (let off = 0; ; ) {
      const b = await vfs.read(h, off, 1 << 20);
      if (b.length === 0) break;
      parts.push(Buffer.from(b));
      off += b.length;
    }
    return Buffer.concat(parts);
  } finally {
    await vfs.close(h);
  }
}

export async function expectCode(p: Promise<unknown>, code: VfsErrorCode): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  if (e === undefined) throw new Error(`expected ${code}, but it succeeded`);
  if (!isVfsError(e, code)) throw new Error(`expected ${code}, got ${String((e as Error)?.message ?? e)}`);
}

export interface Tree {
  dirs: string[];
  files: Map<string, string>;
}

/** `root/aI/bJ/fK.txt` for I < a, J < b, K < f, plus `root/top.txt` and an empty `root/empty`. */
export function treeSpec(root: string, a: number, b: number, f: number): Tree {
  const dirs = [root, `${root}/empty`];
  const files = new Map<string, string>();
  files.set(`${root}/top.txt`, `top of ${root}`);
  for (let i = 0; i < a; i++) {
    dirs.push(`${root}/a${i}`);
    for (let j = 0; j < b; j++) {
      dirs.push(`${root}/a${i}/b${j}`);
      for (let k = 0; k < f; k++) files.set(`${root}/a${i}/b${j}/f${k}.txt`, `file ${i}.${j}.${k} ` + 'x'.repeat((i * 7 + j * 3 + k) % 50));
    }
  }
  return { dirs, files };
}

/** Creates the tree (directories in order, files `concurrency` at a time). */
export async function makeTree(vfs: Vfs, t: Tree, concurrency = 16): Promise<void> {
  for (const d of t.dirs) await vfs.mkdir('s', d);
  const entries = [...t.files];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < entries.length) {
      const [p, c] = entries[next++]!;
      await put(vfs, p, c);
    }
  }));
}

/** Every path of the tree (directories and files) with its file id. */
export async function idsOf(vfs: Vfs, t: Tree): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const p of [...t.dirs, ...t.files.keys()]) out.set(p, (await vfs.getattr('s', p)).id);
  return out;
}

export function moved(path: string, from: string, to: string): string {
  return to + path.slice(from.length);
}

export interface Hooks {
  /** Runs before the call reaches the backend; may throw or wait. */
  before?: (op: string, args: unknown[]) => Promise<void> | void;
}

/** A Proxy over a backend that runs `hooks.before` ahead of every method call and counts calls (and calls in flight, hook included) per op. */
export function hooked(inner: Backend, hooks: Hooks): Backend & { inflight: Map<string, number>; peak: Map<string, number>; calls: Map<string, number> } {
  const inflight = new Map<string, number>();
  const peak = new Map<string, number>();
  const calls = new Map<string, number>();
  const extra = { inflight, peak, calls };
  return new Proxy(inner, {
    get(target, prop) {
      if (prop in extra) return extra[prop as keyof typeof extra];
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const op = String(prop);
      return async (...args: unknown[]) => {
        calls.set(op, (calls.get(op) ?? 0) + 1);
        const n = (inflight.get(op) ?? 0) + 1;
        inflight.set(op, n);
        peak.set(op, Math.max(peak.get(op) ?? 0, n));
        try {
          await hooks.before?.(op, args);
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          inflight.set(op, (inflight.get(op) ?? 1) - 1);
        }
      };
    },
  }) as Backend & typeof extra;
}

/** A logger that keeps what it is told. */
export function memoryLogger(): TreeMoveLogger & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
  };
}

/** A gate: wait() blocks until open(). */
export function gate(): { wait: () => Promise<void>; open: () => void; waiting: () => number } {
  let release!: () => void;
  const p = new Promise<void>((r) => (release = r));
  let n = 0;
  return {
    wait: async () => {
      n++;
      await p;
    },
    open: () => release(),
    waiting: () => n,
  };
}

/** Polls `cond` until true (bounded: a hang guard, not a speed assertion). */
export async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
