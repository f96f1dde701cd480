/**
 * A small append-only journal of the multipart uploads this backend has started and not yet
 * finished, so that recover() after a crash can abort exactly the uploads the crashed process left
 * (their parts cost storage until aborted), without touching uploads of anyone else.
 *
 * One JSON object per line: {"s":key,"u":uploadId} when started, {"e":uploadId} when completed or
 * aborted. Lines are appended in order through one promise chain; a lost last line only means the
 * age rule of recover() catches that upload later.
 */
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export class UploadJournal {
  readonly file: string;
  private chain: Promise<void> = Promise.resolve();
  private readonly ready: Promise<void>;

  constructor(dir: string, identity: string) {
    const h = createHash('sha256').update(identity).digest('hex').slice(0, 16);
    this.file = join(dir, `s3-uploads-${h}.jsonl`);
    this.ready = mkdir(dir, { recursive: true, mode: 0o700 }).then(() => undefined, () => undefined);
  }

  private append(line: object): void {
    this.chain = this.chain.then(() => this.ready).then(() => appendFile(this.file, `${JSON.stringify(line)}\n`, { mode: 0o600 })).catch(() => undefined);
  }

  started(key: string, uploadId: string): void {
    this.append({ s: key, u: uploadId });
  }

  ended(uploadId: string): void {
    this.append({ e: uploadId });
  }

  /** Uploads started and never ended, by upload id -> key. */
  async pending(): Promise<Map<string, string>> {
    await this.chain;
    const out = new Map<string, string>();
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return out;
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const o = JSON.parse(line) as { s?: unknown; u?: unknown; e?: unknown };
        if (typeof o.s === 'string' && typeof o.u === 'string') out.set(o.u, o.s);
        else if (typeof o.e === 'string') out.delete(o.e);
      } catch {
        // A torn last line from a crash.
      }
    }
    return out;
  }

  /** Rewrites the journal with only `keep` (uploads still in progress in this process). */
  async compact(keep: Map<string, string>): Promise<void> {
    const run = async (): Promise<void> => {
      await this.ready;
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, [...keep].map(([u, s]) => `${JSON.stringify({ s, u })}\n`).join(''), { mode: 0o600 });
      await rename(tmp, this.file);
    };
    this.chain = this.chain.then(run).catch(() => undefined);
    await this.chain;
  }
}
