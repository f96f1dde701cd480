/**
 * The helper thread of stat-worker.ts: lstat (and readlink for symbolic links) of a batch of names
 * in one directory, answered as packed numbers. Runs only synchronous calls, one batch at a time.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { STAT_FIELDS, type StatReply, type StatRequest } from './stat-protocol.ts';

const port = parentPort;
if (!port) throw new Error('stat-thread.ts runs as a worker thread');

port.on('message', (m: StatRequest) => {
  const n = m.names.length;
  const nums = new BigInt64Array(n * STAT_FIELDS);
  const present = new Uint8Array(n);
  const links: Array<[number, string]> = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = `${m.base}/${m.names[i]}`;
      const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
      // Removed between readdir and lstat: not part of the listing any more.
      if (st === undefined) continue;
      present[i] = 1;
      const o = i * STAT_FIELDS;
      nums[o] = st.mode;
      nums[o + 1] = st.uid;
      nums[o + 2] = st.gid;
      nums[o + 3] = st.nlink;
      nums[o + 4] = st.size;
      nums[o + 5] = st.atimeNs;
      nums[o + 6] = st.mtimeNs;
      nums[o + 7] = st.ctimeNs;
      nums[o + 8] = st.birthtimeNs;
      nums[o + 9] = st.dev;
      nums[o + 10] = st.ino;
      if (st.isSymbolicLink()) {
        try {
          links.push([i, readlinkSync(p)]);
        } catch {
          // Replaced meanwhile: listed without a target.
        }
      }
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reply: StatReply = { id: m.id, error: { code: err.code, message: err.message } };
    port.postMessage(reply);
    return;
  }
  const reply: StatReply = { id: m.id, nums, present, links };
  port.postMessage(reply, [nums.buffer, present.buffer]);
});
