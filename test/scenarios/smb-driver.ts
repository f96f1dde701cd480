/**
 * The SMB driver: the scenarios through the gateway's SMB server, spoken by impacket (Debian's
 * python3-impacket, an independent SMB2/3 client) over SMB 3.1.1 with signing, logged in with
 * NTLMv2 as the scenario user. One python process per client (smb-worker.py) holds one connection
 * and one tree; requests go to it as JSON lines, one at a time, and each reply carries the
 * NTSTATUS name on failure, mapped here once (`CODES`).
 *
 * Each operation is what a Windows client sends: CREATE with FILE_DIRECTORY_FILE or
 * FILE_NON_DIRECTORY_FILE (so rmdir of a file is NOT_A_DIRECTORY and remove of a directory
 * FILE_IS_A_DIRECTORY from the server, no client-side look-up), writeFile as OVERWRITE_IF + WRITE,
 * remove and rmdir as FileDispositionInformation, rename as FileRenameInformation with
 * ReplaceIfExists as asked, truncate as FileEndOfFileInformation, setTimes as FileBasicInformation
 * (LastWriteTime only), stat from FileNetworkOpenInformation, list from QUERY_DIRECTORY.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type ShareInfo, type Stat } from './driver.ts';

const WORKER = fileURLToPath(new URL('./smb-worker.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

/** NTSTATUS name → the scenario codes (the wire detail stays in the message). */
const CODES: Record<string, ClientErrorCode> = {
  STATUS_OBJECT_NAME_NOT_FOUND: 'ENOENT',
  STATUS_OBJECT_PATH_NOT_FOUND: 'ENOENT',
  STATUS_NO_SUCH_FILE: 'ENOENT',
  STATUS_OBJECT_NAME_COLLISION: 'EEXIST',
  STATUS_DIRECTORY_NOT_EMPTY: 'ENOTEMPTY',
  STATUS_FILE_IS_A_DIRECTORY: 'EISDIR',
  STATUS_NOT_A_DIRECTORY: 'ENOTDIR',
  STATUS_ACCESS_DENIED: 'EACCES',
  STATUS_CANNOT_DELETE: 'EACCES',
  STATUS_MEDIA_WRITE_PROTECTED: 'EACCES',
  STATUS_SHARING_VIOLATION: 'ELOCKED',
  STATUS_FILE_LOCK_CONFLICT: 'ELOCKED',
  STATUS_LOCK_NOT_GRANTED: 'ELOCKED',
  STATUS_OBJECT_NAME_INVALID: 'EINVAL',
  STATUS_OBJECT_PATH_SYNTAX_BAD: 'EINVAL',
  STATUS_INVALID_PARAMETER: 'EINVAL',
  STATUS_NAME_TOO_LONG: 'ENAMETOOLONG',
  STATUS_DELETE_PENDING: 'EBUSY',
  STATUS_NOT_SUPPORTED: 'ENOTSUP',
  STATUS_INVALID_DEVICE_REQUEST: 'ENOTSUP',
  STATUS_DISK_FULL: 'ENOSPC',
  STATUS_QUOTA_EXCEEDED: 'ENOSPC',
};

/**
 * SMB has no "name too long" answer in practice: Windows and Samba (and Portico) say
 * OBJECT_NAME_INVALID for a component the store cannot hold. The client knows the name it sent,
 * so a component over 255 UTF-8 bytes (the POSIX limit the scenarios state) is ENAMETOOLONG.
 */
const NAME_MAX = 255;

interface Reply {
  ok: boolean;
  status?: string;
  detail?: string;
  [k: string]: unknown;
}

export interface SmbClientOptions {
  port: number;
  share: ShareInfo;
  user: string;
  password: string;
}

export async function smbClient(o: SmbClientOptions): Promise<FileClient> {
  const py: ChildProcessWithoutNullStreams = spawn(PYTHON, [WORKER], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  py.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const waiting: ((line: string) => void)[] = [];
  let buffered = '';
  let exited = false;
  py.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  const exitedP = new Promise<void>((resolve) =>
    py.on('exit', () => {
      exited = true;
      for (const w of waiting.splice(0)) w(JSON.stringify({ ok: false, status: 'EXITED', detail: `smb worker exited: ${stderr}` }));
      resolve();
    }),
  );

  /**
   * Two characters cannot be part of a name on the SMB wire: a backslash separates path
   * components and a colon a file from its named stream (MS-FSCC 2.1.5), so 'a:b' asks for stream
   * b of file a, not for a file of that name. The driver refuses such a name (EINVAL) rather than
   * let it address something else, as the Linux cifs client refuses a backslash (check_name).
   */
  const sendable = (what: string, ...paths: string[]): void => {
    for (const p of paths) if (/[\\:]/.test(p)) throw new ClientError('EINVAL', `${what} ${p}: a backslash or colon in an SMB name`);
  };
  let chain: Promise<unknown> = Promise.resolve();
  /** One request at a time (the worker answers in order); a failure becomes a ClientError. */
  const call = (what: string, path: string, req: Record<string, unknown>): Promise<Reply> => {
    const p = chain.then(async () => {
      sendable(what, ...[req.path, req.to].filter((x): x is string => typeof x === 'string'));
      if (exited) throw new ClientError('EIO', `${what} ${path}: smb worker gone: ${stderr}`);
      const line = await new Promise<string>((resolve) => {
        waiting.push(resolve);
        py.stdin.write(`${JSON.stringify(req)}\n`);
      });
      const r = JSON.parse(line) as Reply;
      if (!r.ok) {
        const names = [req.path, req.to].filter((x): x is string => typeof x === 'string').map((x) => x.split('/').at(-1) ?? '');
        const tooLong = r.status === 'STATUS_OBJECT_NAME_INVALID' && names.some((n) => Buffer.byteLength(n) > NAME_MAX);
        throw new ClientError(tooLong ? 'ENAMETOOLONG' : (CODES[r.status ?? ''] ?? 'EIO'), `${what} ${path}: ${r.status} ${r.detail ?? ''}`);
      }
      return r;
    });
    chain = p.catch(() => undefined);
    return p;
  };

  try {
    await call('connect', o.share.name, { op: 'connect', port: o.port, user: o.user, password: o.password, share: o.share.name });
  } catch (e) {
    py.kill();
    throw e;
  }

  const b64 = (d: Uint8Array): string => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
  const data = (r: Reply): Buffer => Buffer.from(r.data as string, 'base64');

  const caps: Capabilities = {
    randomWrite: true,
    // Appends are writes at the end of file the client reads first (FileNetworkOpenInformation).
    append: true,
    // OVERWRITE_IF truncates, then WRITEs follow: a reader between them sees a short file.
    atomicWrite: false,
    truncate: true,
    setTimes: true,
    mtimeResolutionMs: 1,
    // SMB2 without reparse points or the POSIX extensions has neither.
    symlinks: false,
    hardLinks: false,
    // The scenarios' lock is WebDAV's: exclusive, whole-file, on files and directories, and it
    // stops others' writes, removes and renames. SMB's byte-range locks are mandatory but cover
    // byte ranges of an open file only: they stop others' reads and writes of those bytes, not a
    // remove or rename of the file, and a directory has no bytes to lock (test/smb covers them
    // and their cross-protocol conflicts). Share modes deny only while the open is held, and a
    // deny-delete open still lets a directory's members change. So no such lock: false.
    locks: false,
    caseInsensitive: o.share.caseInsensitive,
    renameReplacesDir: false,
    rmdirRecursive: false,
    // The server refuses to create what Windows cannot name (protocols/smb/README.md).
    posixNames: false,
  };

  const client: FileClient = {
    name: 'smb',
    caps,
    mkdir: async (path) => void (await call('mkdir', path, { op: 'mkdir', path })),
    rmdir: async (path) => void (await call('rmdir', path, { op: 'rmdir', path })),
    writeFile: async (path, d) => void (await call('writeFile', path, { op: 'write', path, data: b64(d) })),
    readFile: async (path) => data(await call('readFile', path, { op: 'read', path })),
    readRange: async (path, offset, length) => data(await call('readRange', path, { op: 'read', path, offset, length })),
    stat: async (path): Promise<Stat> => {
      const r = await call('stat', path, { op: 'stat', path });
      return { type: r.type as Stat['type'], size: r.size as number, mtimeMs: Math.floor(r.mtimeMs as number) };
    },
    list: async (path) => (await call('list', path, { op: 'list', path })).entries as Entry[],
    rename: async (from, to, opts = {}) => void (await call('rename', `${from} -> ${to}`, { op: 'rename', path: from, from, to, replace: opts.replace !== false })),
    remove: async (path) => void (await call('remove', path, { op: 'remove', path })),
    writeAt: async (path, offset, d) => void (await call('writeAt', path, { op: 'write', path, offset, data: b64(d) })),
    appendFile: async (path, d) => void (await call('appendFile', path, { op: 'write', path, offset: 0, append: true, data: b64(d) })),
    truncate: async (path, size) => void (await call('truncate', path, { op: 'truncate', path, size })),
    setTimes: async (path, mtimeMs) => void (await call('setTimes', path, { op: 'settimes', path, mtimeMs })),
    close: async () => {
      await call('close', o.share.name, { op: 'close' }).catch(() => undefined);
      py.stdin.end();
      if (!exited) {
        const timer = setTimeout(() => py.kill('SIGKILL'), 5000);
        await exitedP;
        clearTimeout(timer);
      }
    },
  };
  return client;
}
