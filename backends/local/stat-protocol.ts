/** Messages between stat-worker.ts and its thread (stat-thread.ts). */

/** BigInt64 fields per name: mode, uid, gid, nlink, size, atime, mtime, ctime, birthtime (ns), dev, ino. */
export const STAT_FIELDS = 11;

export interface StatRequest {
  id: number;
  /** Directory the names are in (may be /proc/self/fd/N: the thread shares the descriptor table). */
  base: string;
  names: string[];
}

export type StatReply =
  | { id: number; nums: BigInt64Array; present: Uint8Array; links: Array<[number, string]>; error?: undefined }
  | { id: number; error: { code: string | undefined; message: string } };
