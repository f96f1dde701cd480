/**
 * ChangeTime as Windows keeps it, over backends whose ctime Portico cannot set or move.
 *
 * Windows updates a file's ChangeTime on every change — data, size, times, attributes, rename — and
 * lets a client set it explicitly (FileBasicInformation; smbtorture's set-up of "complex" files
 * does, then checks it). A backend's ctime follows its own changes (a write, a utimes, a rename on
 * a local disk), but not those Portico keeps in its store (Windows attributes, creation time), and
 * no backend can be given a ctime. So a ChangeTime Portico sets is kept here, with the backend
 * ctime it was set over: it is reported while the backend's ctime has not moved past that base,
 * and dropped as soon as it has (a later write or rename, through any protocol or on the disk
 * itself, shows the backend's newer ctime). In memory only: after a restart the backend's ctime
 * shows again, which is the time of the file's last backend change — a value Windows could
 * report, just not the one last set. Bounded: past MAX_KEPT the oldest entries go (they fall back
 * the same way).
 */
import type { FileId, TimeNs } from './types.ts';

export const MAX_KEPT = 100_000;

export class ChangeTimes {
  readonly #kept = new Map<FileId, { ns: TimeNs; base: TimeNs }>();

  /** `ns` is the file's ChangeTime from now on, while the backend's ctime stays at or below `base`. */
  set(id: FileId, ns: TimeNs, base: TimeNs): void {
    this.#kept.delete(id);
    this.#kept.set(id, { ns, base });
    if (this.#kept.size > MAX_KEPT) this.#kept.delete(this.#kept.keys().next().value!);
  }

  /** The ChangeTime to report for a file whose backend ctime is `backendCtime`. */
  apply(id: FileId, backendCtime: TimeNs): TimeNs {
    const k = this.#kept.get(id);
    if (k === undefined) return backendCtime;
    if (backendCtime > k.base) {
      this.#kept.delete(id);
      return backendCtime;
    }
    return k.ns;
  }

  get size(): number {
    return this.#kept.size;
  }
}
