/**
 * The FUSE driver's worker (fuse-driver.ts): a child process that makes the scenarios' file-system
 * calls on the mount with plain Node `fs`, because the process that serves a FUSE mount must never
 * call it (its libuv thread pool and its event loop answer the kernel's requests).
 *
 * Requests arrive over the IPC channel (advanced serialization: bytes travel as Uint8Array), each
 * with an id; several may be in flight (the scenarios' concurrent writers), and each answer names
 * its id: `{ id, ok: true, ... }` or `{ id, ok: false, code, message }` with the errno's name as
 * Node reports it (ENOENT …), mapped to the scenario codes once, in the driver. Paths are absolute
 * paths on the mount, made by the driver. Standalone (node: modules only, erasable types), run by
 * Node's type stripping.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rmdir, symlink, link, truncate, unlink, utimes, writeFile } from 'node:fs/promises';

interface Request {
  id: number;
  op: string;
  path: string;
  to?: string;
  data?: Uint8Array;
  offset?: number;
  length?: number;
  size?: number;
  mtimeMs?: number;
  replace?: boolean;
}

type Answer = Record<string, unknown>;

/**
 * renameat2(2) with RENAME_NOREPLACE: Node has no binding for it, so a python3 one-liner makes the
 * one system call (atomic on the server: Portico refuses an existing target with EEXIST).
 */
const RENAME_NOREPLACE = `
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, sys.argv[1].encode('utf-8', 'surrogateescape'), -100, sys.argv[2].encode('utf-8', 'surrogateescape'), 1)
print('ok' if r == 0 else errno.errorcode.get(ctypes.get_errno(), 'EIO'))
`;

class Errno extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function renameNoReplace(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', RENAME_NOREPLACE, from, to], { timeout: 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      const out = stdout.trim();
      if (out === 'ok') resolve();
      else reject(new Errno(out, `renameat2(RENAME_NOREPLACE) ${from} -> ${to}: ${out}`));
    });
  });
}

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

async function run(r: Request): Promise<Answer> {
  const p = r.path;
  switch (r.op) {
    case 'mkdir':
      await mkdir(p);
      return {};
    case 'rmdir':
      await rmdir(p);
      return {};
    case 'writeFile':
      // open(O_WRONLY|O_CREAT|O_TRUNC), write(2)s, close(2): the close's FLUSH publishes.
      await writeFile(p, r.data!);
      return {};
    case 'readFile':
      return { data: await readFile(p) };
    case 'readRange':
      return { data: await readRange(p, r.offset!, r.length!) };
    case 'stat': {
      // lstat: a symbolic link is reported as one. Nanoseconds, so the ms are not rounded twice.
      const st = await lstat(p, { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
      return { type, size: Number(st.size), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
    }
    case 'list': {
      const entries = await readdir(p, { withFileTypes: true });
      return { entries: entries.map((e) => ({ name: e.name, type: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'symlink' : 'file' })) };
    }
    case 'rename':
      if (r.replace === false) await renameNoReplace(p, r.to!);
      else await rename(p, r.to!);
      return {};
    case 'remove':
      await unlink(p);
      return {};
    case 'writeAt': {
      // O_WRONLY|O_CREAT without O_TRUNC, one pwrite(2) (a gap past EOF reads as zeros).
      const fh = await open(p, constants.O_WRONLY | constants.O_CREAT);
      try {
        const d = r.data!;
        for (let at = 0; at < d.length; ) at += (await fh.write(d, at, d.length - at, r.offset! + at)).bytesWritten;
      } finally {
        await fh.close();
      }
      return {};
    }
    case 'appendFile': {
      // O_APPEND: the kernel writes at the size the server reports.
      const fh = await open(p, 'a');
      try {
        await fh.write(r.data!);
      } finally {
        await fh.close();
      }
      return {};
    }
    case 'truncate':
      await truncate(p, r.size!);
      return {};
    case 'setTimes': {
      // utimensat(2). Times travel as seconds in a double and libuv keeps microseconds by
      // truncation; half a microsecond more keeps e.g. x.123 s from arriving as x.122999 s.
      const st = await lstat(p);
      await utimes(p, st.atime, (r.mtimeMs! + 0.0005) / 1000);
      return {};
    }
    case 'symlink':
      await symlink(r.to!, p);
      return {};
    case 'readlink':
      return { target: await readlink(p) };
    case 'link':
      await link(r.to!, p);
      return {};
    default:
      throw new Errno('EINVAL', `unknown op ${r.op}`);
  }
}

process.on('message', (m: Request) => {
  void run(m).then(
    (a) => process.send!({ id: m.id, ok: true, ...a }),
    (e: unknown) => {
      const err = e as NodeJS.ErrnoException;
      process.send!({ id: m.id, ok: false, code: typeof err.code === 'string' ? err.code : 'EIO', message: err instanceof Error ? err.message : String(e) });
    },
  );
});
// The driver went away (test ended, or killed): nothing to do any more.
process.on('disconnect', () => process.exit(0));
process.send!({ id: 0, ok: true, ready: true });
