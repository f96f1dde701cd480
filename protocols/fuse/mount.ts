/**
 * One FUSE mount: the mount point's checks, the addon's session and the FuseFs behind it.
 *
 * Mount point rules (issue 13): a directory left by a crashed Portico (a FUSE mount whose server is
 * gone: stat fails with ENOTCONN) is unmounted (`fusermount3 -u -z`) and used; a live mount point
 * (busy) or a non-empty directory is refused with a clear error. Unmount: lazy (umount2 MNT_DETACH
 * as root, else `fusermount3 -u -z`), so a shell sitting in the directory does not keep Portico
 * from stopping; the kernel ends the connection and the addon's loop thread exits.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { FuseFs, type FuseFsOptions } from './fs.ts';
import { nativeModule, type NativeSession } from './native.ts';

export interface FuseMountOptions extends FuseFsOptions {
  mountpoint: string;
  allowOther?: boolean;
  writeback?: boolean;
  logger?: Logger;
}

/** Mount points of this machine (from /proc/self/mountinfo, octal escapes decoded). */
export function mountPoints(): Map<string, string> {
  const out = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 5 || dash < 0) continue;
    const dir = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.set(dir, f[dash + 1] ?? '');
  }
  return out;
}

/**
 * Largest READ the kernel sends (the max_read mount option; init() asks for the same): 1008 KiB,
 * not the 1 MiB a request could carry (max_pages 256). A read answered from a local file's
 * descriptor is spliced file -> pipe -> /dev/fuse by libfuse (fuse_addon.cc ReplyFd), and its pipe
 * must hold the whole reply: header and data take a pipe slot per page, and libfuse sizes it as
 * data + 3 pages. A pipe may grow to /proc/sys/fs/pipe-max-size (1 MiB) without CAP_SYS_RESOURCE,
 * which even root lacks in containers: a 1 MiB READ never fit (libfuse then preads into a fresh
 * 1 MiB buffer, mmap'ed and faulted in per request, and writes it), 1008 KiB does.
 */
export const MAX_READ = 1008 * 1024;

/**
 * Kernel readahead of the mount (KiB): the size of the READ requests a sequential read makes. The
 * kernel gives a FUSE mount 128 KiB (it offers that at INIT and takes only a smaller answer), so a
 * `dd bs=1M` came as 8 requests per MiB; each costs Portico a request's fixed work. Equal to
 * max_read: a 1 MiB window was split into a 1008 KiB and a 16 KiB request.
 */
export const READAHEAD_KB = MAX_READ / 1024;

/**
 * Raises the mount's readahead through its backing device's sysfs knob
 * (/sys/class/bdi/MAJOR:MINOR/read_ahead_kb, found in /proc/self/mountinfo — never by a stat of
 * the mount point, which this process serves). Only root may write it; elsewhere the kernel's
 * 128 KiB stays (false). Called after the INIT exchange, which would lower it again.
 */
export function raiseReadahead(dir: string, kb = READAHEAD_KB): boolean {
  try {
    // The last FUSE mount at the directory: the one on top (ours).
    let dev: string | undefined;
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      const dash = f.indexOf('-');
      if (f.length < 5 || dash < 0 || !(f[dash + 1] ?? '').startsWith('fuse')) continue;
      const at = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      if (at === dir && /^\d+:\d+$/.test(f[2]!)) dev = f[2];
    }
    if (dev === undefined) return false;
    const knob = `/sys/class/bdi/${dev}/read_ahead_kb`;
    if (Number(readFileSync(knob, 'utf8')) < kb) writeFileSync(knob, String(kb));
    return true;
  } catch {
    // not root, or no sysfs: the kernel's default stays
  }
  return false;
}

export function fusermountUnmount(dir: string): void {
  execFileSync('fusermount3', ['-u', '-z', dir], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

/**
 * Checks a mount point before mounting; cleans a stale FUSE mount. Returns 'stale-cleaned' when
 * it unmounted one, else 'ok'. Throws with a message that says what is wrong.
 */
export function prepareMountpoint(dir: string, logger?: Logger): 'ok' | 'stale-cleaned' {
  const abs = resolve(dir);
  let result: 'ok' | 'stale-cleaned' = 'ok';
  try {
    statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      logger?.warn({ mountpoint: abs }, 'fuse: stale mount (its server is gone); unmounting it');
      fusermountUnmount(abs);
      result = 'stale-cleaned';
    } else if (code === 'ENOENT') {
      throw new Error(`fuse: mount point ${abs} does not exist`);
    } else {
      throw new Error(`fuse: mount point ${abs}: ${(e as Error).message}`);
    }
  }
  const fstype = mountPoints().get(abs);
  if (fstype !== undefined && fstype.startsWith('fuse')) throw new Error(`fuse: ${abs} is busy: a FUSE file system (${fstype}) is mounted there; unmount it first (fusermount3 -u ${abs})`);
  if (!statSync(abs).isDirectory()) throw new Error(`fuse: mount point ${abs} is not a directory`);
  if (readdirSync(abs).length > 0) throw new Error(`fuse: mount point ${abs} is not empty`);
  return result;
}

export class FuseMount {
  readonly fs: FuseFs;
  readonly mountpoint: string;
  private native: NativeSession | undefined;
  private exited: Promise<void>;
  private onExit!: () => void;
  private mounted = false;
  private readonly o: FuseMountOptions;

  constructor(o: FuseMountOptions) {
    this.o = o;
    this.mountpoint = resolve(o.mountpoint);
    this.fs = new FuseFs(o);
    this.exited = new Promise((r) => (this.onExit = r));
  }

  get isMounted(): boolean {
    return this.mounted;
  }

  /** Resolves when the kernel connection ended (unmount, or fusermount3 -u from outside). */
  get ended(): Promise<void> {
    return this.exited;
  }

  async mount(): Promise<void> {
    const mod = nativeModule();
    prepareMountpoint(this.mountpoint, this.o.logger);
    const opts = ['fsname=portico', 'subtype=portico', `max_read=${MAX_READ}`];
    if (this.o.allowOther) opts.push('allow_other');
    // Page cache: explicit invalidation only (README "page cache"), where change events invalidate
    // (invalidate on) and the addon knows the option (built with replyFd; an older build would pass
    // it to libfuse, which refuses unknown options).
    if (this.o.invalidate !== false && typeof (mod.FuseSession.prototype as { replyFd?: unknown }).replyFd === 'function') opts.push('no_auto_inval_data');
    const fs = this.fs;
    // The first request comes after the kernel took INIT's answer (requests wait for it).
    let first = true;
    const native = new mod.FuseSession(
      this.mountpoint,
      opts,
      this.o.writeback === true,
      (op, id, ino, name, name2, n1, n2, n3, data) => {
        if (op === 0) {
          this.mounted = false;
          this.onExit();
          return;
        }
        if (first) {
          first = false;
          if (!raiseReadahead(this.mountpoint)) this.o.logger?.debug({ mountpoint: this.mountpoint }, 'fuse: readahead stays at the kernel default (128 KiB; raising it needs root)');
        }
        fs.handler(op, id, ino, name, name2, n1, n2, n3, data);
      },
      () => undefined,
    );
    this.native = native;
    await fs.start(native);
    native.mount();
    this.mounted = true;
  }

  /** Unmounts (lazily) and waits for the loop to end, then ends the session. */
  async unmount(timeoutMs = 10_000): Promise<void> {
    if (this.native && this.mounted) {
      if (!this.native.unmount()) {
        try {
          fusermountUnmount(this.mountpoint);
        } catch (e) {
          this.o.logger?.warn({ err: e, mountpoint: this.mountpoint }, 'fuse: fusermount3 -u failed');
        }
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    await this.fs.close();
  }
}
