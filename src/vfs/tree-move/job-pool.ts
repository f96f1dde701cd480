/**
 * A bounded job queue for the tree-move walker (walker.ts): at most `limit` jobs run, at most
 * `maxQueued` wait; submit() waits for room (back-pressure on the directory walk, so memory does not
 * grow with the tree). The first failure stops it: queued jobs are dropped and submit()/drain()
 * reject with that error.
 */
export class JobPool {
  private running = 0;
  private readonly queue: { run: () => Promise<void>; drop: (e: unknown) => void }[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private error: unknown;
  private failed = false;
  private readonly limit: number;
  private readonly maxQueued: number;

  constructor(limit: number, maxQueued: number) {
    this.limit = Math.max(1, limit);
    this.maxQueued = Math.max(1, maxQueued);
  }

  /** Queues fn once there is room; the returned `done` settles with fn (its failure also stops the pool). */
  async submit<T>(fn: () => Promise<T>): Promise<{ done: Promise<T> }> {
    while (!this.failed && this.queue.length >= this.maxQueued) await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.failed) throw this.error;
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The pool reports the failure through drain(); nobody has to await `done`.
    done.catch(() => undefined);
    this.queue.push({
      run: async () => {
        try {
          resolve(await fn());
        } catch (e) {
          reject(e);
          throw e;
        }
      },
      drop: reject,
    });
    this.pump();
    return { done };
  }

  private pump(): void {
    while (!this.failed && this.running < this.limit && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.roomWaiters.shift()?.();
      this.running++;
      job.run().then(
        () => this.finished(),
        (e: unknown) => {
          this.fail(e);
          this.finished();
        },
      );
    }
  }

  private finished(): void {
    this.running--;
    this.pump();
    if (this.running === 0 && (this.queue.length === 0 || this.failed)) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Waits until every job has ended; rejects with the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failed) throw this.error;
  }

  /** Waits until nothing runs (failed or not). */
  async settle(): Promise<void> {
    if (this.running === 0 && (this.queue.length === 0 || this.failed)) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Stops the pool (a job or the walk failed): queued jobs are dropped (their `done` rejects). */
  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = e;
    for (const job of this.queue.splice(0)) job.drop(e);
    for (const w of this.roomWaiters.splice(0)) w();
  }
}
