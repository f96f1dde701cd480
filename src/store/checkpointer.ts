/**
 * WAL checkpoints off the event loop, while writes are frequent.
 *
 * SQLite in WAL mode copies the log back into the database file ("checkpoint") when a commit finds
 * the WAL past 1,000 pages: inside that COMMIT, on the thread that commits, with two fsyncs. For the
 * gateway that thread is the event loop of every protocol: measured on this ext4 VM (3,000 commits of
 * 8 id rows, node:sqlite, synchronous = NORMAL), a commit's p99 was 3.5-5 ms and its worst 23-190 ms
 * with SQLite's automatic checkpoints, against 0.2-0.4 ms and 12-33 ms without them; the commits'
 * total wall time 350-920 ms against 225-239 ms.
 *
 * So while the store commits often (START_COMMITS writes within START_WINDOW_MS: a small-file
 * workload on any protocol), automatic checkpoints are off (`wal_autocheckpoint = 0`) and a worker
 * thread with its own connection (checkpoint-thread.ts) checkpoints instead: PASSIVE (it never
 * waits for, nor blocks, the writer or readers), when the WAL changed, every intervalMs. After
 * IDLE_MS without a change the thread closes its connection and ends, and SQLite's own checkpoints
 * come back. Why not always on: a worker thread costs ~18-24 MB of resident memory (a V8 isolate
 * and Node's environment, measured here), which an idle gateway or a large-file workload (a few
 * commits per file) should not pay for a handful of checkpoints.
 *
 * Failure: a thread that cannot start or dies gives the checkpoints back to SQLite (autocheckpoint
 * 1000, its default) for good, with one warning; nothing is lost either way (a WAL is a valid
 * store, however long). Only long-running processes use this (the gateway:
 * MetadataStore.checkpointInBackground); the CLI's short commands keep SQLite's default.
 *
 * Stopping is synchronous (MetadataStore.close is): the thread is asked to close its connection and
 * the caller waits for it, bounded by STOP_WAIT_MS. A connection left open in this process would keep
 * its lock on the WAL index and stop the last close from checkpointing and removing the WAL.
 */
import module from 'node:module';
import type { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';

export interface CheckpointThreadData {
  file: string;
  intervalMs: number;
  idleMs: number;
  control: SharedArrayBuffer;
}

/**
 * The control words shared with the thread (Int32Array): stop requested, stopped (its connection
 * closed: set on every orderly end, asked or idle), checkpoint passes run, the last pass's result
 * (0 ok, 1 busy, 2 error).
 */
export const STOP = 0;
export const STOPPED = 1;
export const RUNS = 2;
export const LAST = 3;
const CONTROL_WORDS = 4;

/**
 * The thread's entry: turns on the process's compile cache in the thread, then imports the thread's
 * module. A worker does not inherit `module.enableCompileCache()` (bin/portico.js turns it on for
 * the main thread only), so a thread started on checkpoint-thread.ts itself strips its types with
 * a TypeScript stripper of its own (a WebAssembly module instantiated in the thread's isolate):
 * measured here (load ~20), a start cost ~100-110 ms of CPU and the thread ~28.5 MB of RSS; from
 * the cache ~52-55 ms and ~19-20 MB. The thread starts again after every quiet minute (idleMs).
 * Without a cache (tests, a CLI command) the import strips as before.
 */
// getBuiltinModule, not require: the code is run as a module when the process was started with
// --input-type=module (workers inherit execArgv), as a script otherwise.
const THREAD_BOOT = `const { workerData } = process.getBuiltinModule('node:worker_threads');
if (workerData.cacheDir) process.getBuiltinModule('node:module').enableCompileCache(workerData.cacheDir);
import(workerData.url).catch((e) => { setImmediate(() => { throw e; }); });`;

/** SQLite's own default, in force whenever the thread is not running. */
const SQLITE_AUTOCHECKPOINT = 1000;
const STOP_WAIT_MS = 5000;

export interface CheckpointerOptions {
  /** Between passes of the thread (default 500 ms). */
  intervalMs?: number;
  /** Writes within `startWindowMs` that start the thread (default 200 in 10 s; 0 starts it at once). */
  startCommits?: number;
  startWindowMs?: number;
  /** The thread ends after this long without a WAL change (default 60 s). */
  idleMs?: number;
}

export class Checkpointer {
  private readonly db: DatabaseSync;
  private readonly file: string;
  private readonly intervalMs: number;
  private readonly startCommits: number;
  private readonly startWindowMs: number;
  private readonly idleMs: number;
  private words = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  private worker: Worker | undefined;
  /** A thread failed: SQLite checkpoints from now on. */
  private broken = false;
  private closed = false;
  private windowStart = 0;
  private writes = 0;
  /** Passes run by threads that already ended. */
  private pastRuns = 0;
  /** Threads started so far (tests, diagnostics). */
  starts = 0;

  constructor(db: DatabaseSync, file: string, o: CheckpointerOptions = {}) {
    this.db = db;
    this.file = file;
    this.intervalMs = o.intervalMs ?? 500;
    this.startCommits = o.startCommits ?? 200;
    this.startWindowMs = o.startWindowMs ?? 10_000;
    this.idleMs = o.idleMs ?? 60_000;
    if (this.startCommits === 0) this.start();
  }

  /** Called by the store before each write it makes: starts the thread when writes are frequent. */
  noteWrite(): void {
    if (this.worker !== undefined || this.broken || this.closed) return;
    const now = performance.now();
    if (now - this.windowStart > this.startWindowMs) {
      this.windowStart = now;
      this.writes = 0;
    }
    if (++this.writes >= this.startCommits) this.start();
  }

  private start(): void {
    this.words = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    const data: CheckpointThreadData & { url: string; cacheDir: string | undefined } = {
      file: this.file,
      intervalMs: this.intervalMs,
      idleMs: this.idleMs,
      control: this.words.buffer as SharedArrayBuffer,
      url: new URL('./checkpoint-thread.ts', import.meta.url).href,
      cacheDir: module.getCompileCacheDir?.(),
    };
    let w: Worker;
    try {
      w = new Worker(THREAD_BOOT, {
        eval: true,
        workerData: data,
        // A connection, a timer and a stat: a small heap (module loading needs ~12 MB).
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      });
    } catch (e) {
      this.fail(`could not start (${(e as Error).message})`);
      return;
    }
    w.unref();
    const words = this.words;
    w.on('error', (e: Error) => {
      if (this.worker === w) this.fail(`failed (${e.message})`);
    });
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      if (Atomics.load(words, STOPPED) === 1) {
        // An orderly end (idle): SQLite checkpoints again until writes pick up.
        this.ended(words);
        this.windowStart = performance.now();
        this.writes = 0;
      } else this.fail(`exited (${code})`);
    });
    this.worker = w;
    this.starts++;
    this.db.exec('PRAGMA wal_autocheckpoint = 0');
  }

  private ended(words: Int32Array): void {
    this.worker = undefined;
    this.pastRuns += Atomics.load(words, RUNS);
    if (this.db.isOpen) this.db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT}`);
  }

  private fail(why: string): void {
    this.broken = true;
    this.ended(this.words);
    process.emitWarning(`metadata store: checkpoint thread ${why}; SQLite checkpoints on commit again`);
  }

  /** Whether a thread is running now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Checkpoint passes run by the threads so far (tests, diagnostics). */
  get runs(): number {
    return this.pastRuns + (this.worker ? Atomics.load(this.words, RUNS) : 0);
  }

  /** The last pass's result: 'ok', 'busy' (retried next time) or 'error'. */
  get last(): 'ok' | 'busy' | 'error' {
    return (['ok', 'busy', 'error'] as const)[Atomics.load(this.words, LAST)] ?? 'error';
  }

  /** Ends the running thread as a crash would (tests of the fallback). */
  async killForTest(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Stops the thread for good and waits (bounded) until its connection is closed. */
  stop(): void {
    this.closed = true;
    const w = this.worker;
    if (w === undefined) return;
    const words = this.words;
    this.worker = undefined;
    Atomics.store(words, STOP, 1);
    w.postMessage('stop');
    // Blocks this thread only: the worker has an event loop of its own to answer on.
    Atomics.wait(words, STOPPED, 0, STOP_WAIT_MS);
    if (Atomics.load(words, STOPPED) !== 1) {
      // Still inside a checkpoint's fsync after STOP_WAIT_MS: end it; SQLite recovers a WAL whatever happens.
      void w.terminate();
      process.emitWarning('metadata store: checkpoint thread did not stop in time; terminated');
    }
  }
}
