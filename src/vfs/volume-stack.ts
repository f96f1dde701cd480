/**
 * A share's backend stack, composed in one place: the storage backend at the bottom and the thin
 * layers that wrap it, each in its own file and each calling the next (Samba's VFS modules and
 * SMB_VFS_NEXT_*). The Volume calls the top; no layer knows what is above it.
 *
 * Bottom to top, and why in this order:
 *
 * 1. storage: what createBackend(source) made (local disk, memory, S3).
 * 2. metrics (src/metrics/instrumented-backend.ts), when a registry is given: right above the
 *    storage, so `portico_backend_*` times and counts exactly the calls that reach the store, and
 *    nothing the layers above answer or refuse themselves (a pending file's stat, an EBUSY).
 * 3. deferred creates (deferred-create.ts), on storage without random writes (object stores): a
 *    created file is shown here until its first publish uploads it once. Below the tree-move guard,
 *    so the walk of a moving tree (which runs right below the guard) lists pending files and writes
 *    them out when it copies them, like any other file in the tree.
 * 4. tree-move guard (tree-move/guard.ts), on storage without atomic rename: mutations inside a
 *    directory being moved by copy fail with EBUSY. On top, so every change the VFS makes is checked
 *    before any layer acts on it (a deferred file's materialising upload included), while the move's
 *    own walker, one layer down, passes. On storage with atomic rename no tree moves happen and the
 *    guard stays out of the chain (it only answers "nothing is moving here").
 *
 * Decision: the two layers the VFS must drive (it announces creates to the deferred-create layer;
 * its tree-move scheduler guards trees in the guard) are built here too and handed to the VFS with
 * the stack, rather than added by Vfs.addVolume. Reasons: the whole order is one visible list,
 * written down once, instead of half of it hidden inside addVolume; a layer gets only what it needs
 * (each only the backend below it, none the VFS); and the VFS gets the layers' control objects
 * without wrapping anything itself. What must not be left to callers - that storage without atomic
 * rename is always guarded, else a directory move could run while clients change the tree under
 * it - is decided here from the storage's capabilities, never by the caller, and addVolume refuses
 * a stack that breaks it.
 */
import type { Backend } from './backend.ts';
import { DeferredCreates } from './deferred-create.ts';
import { TreeMoveGuard } from './tree-move/guard.ts';
import { instrumentBackend } from '../metrics/instrumented-backend.ts';
import type { Metrics } from '../metrics/metrics.ts';

export interface VolumeStackOptions {
  /** Count and time the backend calls (`portico_backend_*{backend=metricsLabel}`); none when absent. */
  metrics?: Metrics;
  /** The `backend` label of those series: normally the share name. */
  metricsLabel?: string;
}

/** What Vfs.addVolume takes: the top of the stack, and the layers the VFS drives. */
export interface VolumeStack {
  /** The top layer: what the volume calls. */
  readonly backend: Backend;
  /** The storage backend at the bottom, as created. */
  readonly storage: Backend;
  /** The deferred-create layer (storage without random writes), else undefined. */
  readonly deferredCreates: DeferredCreates | undefined;
  /** The tree-move guard: in the chain when the storage has no atomic rename. */
  readonly treeMoveGuard: TreeMoveGuard;
}

export function buildVolumeStack(storage: Backend, options: VolumeStackOptions = {}): VolumeStack {
  let top = storage;
  if (options.metrics !== undefined) top = instrumentBackend(top, options.metrics, options.metricsLabel ?? storage.kind);
  let deferredCreates: DeferredCreates | undefined;
  if (!storage.capabilities.randomWrites) {
    deferredCreates = new DeferredCreates(top);
    top = deferredCreates.backend;
  }
  const treeMoveGuard = new TreeMoveGuard(top);
  if (!storage.capabilities.atomicRename) top = treeMoveGuard.backend;
  return { backend: top, storage, deferredCreates, treeMoveGuard };
}
