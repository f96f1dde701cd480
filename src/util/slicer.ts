/**
 * Time slices for long work done on the event loop (a large PROPFIND or listing, a recursive copy
 * or removal of a big tree): the work asks `due()` between units and, once its slice is used up,
 * `yield()`s so that everything waiting runs first (setImmediate runs after the poll phase: other
 * requests' I/O, the admin endpoint's /health). A slice is SLICE_MS divided among the long
 * operations running at once, at least MIN_SLICE_MS, so one turn of the loop costs other requests
 * about SLICE_MS however many of them run (four answers of 5 ms each had made 20 ms turns).
 * `close()` when the operation is over.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

export const SLICE_MS = 5;
export const MIN_SLICE_MS = 1;

/** Long operations running now (for the shared slice). */
let running = 0;

export class Slicer {
  private yieldAt: number;
  private open = true;
  constructor() {
    running++;
    this.yieldAt = performance.now() + slice();
  }
  due(): boolean {
    return performance.now() >= this.yieldAt;
  }
  async yield(): Promise<void> {
    await nextTurn();
    this.yieldAt = performance.now() + slice();
  }
  /** Yields when the slice is used up. */
  async breathe(): Promise<void> {
    if (performance.now() >= this.yieldAt) await this.yield();
  }
  close(): void {
    if (this.open) running--;
    this.open = false;
  }
}

function slice(): number {
  return Math.max(MIN_SLICE_MS, SLICE_MS / Math.max(1, running));
}
