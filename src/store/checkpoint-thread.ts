/**
 * The body of the metadata store's checkpoint thread (checkpointer.ts): its own SQLite connection to
 * the store's file, running `PRAGMA wal_checkpoint(PASSIVE)` when the WAL changed since the last
 * pass, every `intervalMs`; after `idleMs` without a change it closes its connection and ends. PASSIVE never waits for a lock and never blocks the gateway's writer or
 * readers; the checkpoint's two fsyncs (WAL, then database file) are paid here, not on the event
 * loop that serves every protocol.
 *
 * Control words: see checkpointer.ts (STOP, STOPPED, RUNS, LAST).
 */
import { statSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

import { LAST, RUNS, STOP, STOPPED, type CheckpointThreadData } from './checkpointer.ts';

const { file, intervalMs, idleMs, control } = workerData as CheckpointThreadData;
const words = new Int32Array(control);
const db = new DatabaseSync(file);
// Never wait: a busy checkpoint is retried at the next tick (PASSIVE takes no busy handler anyway).
db.exec('PRAGMA busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const wal = `${file}-wal`;
let seen = '';
let changedAt = performance.now();

function tick(): void {
  if (Atomics.load(words, STOP) === 1) return stop();
  let mark: string;
  try {
    const st = statSync(wal);
    mark = `${st.size}:${st.mtimeMs}`;
  } catch {
    if (performance.now() - changedAt > idleMs) stop();
    return; // no WAL (yet, or any more): nothing to copy
  }
  if (mark === seen) {
    // Quiet for idleMs: end (the store gives checkpoints back to SQLite until writes pick up).
    if (performance.now() - changedAt > idleMs) stop();
    return;
  }
  changedAt = performance.now();
  try {
    const r = checkpoint.get() as { busy: number } | undefined;
    Atomics.store(words, LAST, r?.busy ? 1 : 0);
    // A busy pass (another checkpointer held the lock) is redone next time.
    if (!r?.busy) seen = mark;
  } catch {
    Atomics.store(words, LAST, 2);
  }
  Atomics.add(words, RUNS, 1);
}

function stop(): void {
  clearInterval(timer);
  try {
    db.close();
  } catch {
    // closing a connection that never wrote cannot fail in a way that matters here
  }
  Atomics.store(words, STOPPED, 1);
  Atomics.notify(words, STOPPED);
  parentPort?.close();
}

const timer = setInterval(tick, intervalMs);
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') stop();
  else if (m === 'tick') tick();
});
