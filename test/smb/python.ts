/**
 * Runs a Python snippet under Debian's /usr/bin/python3 (where python3-impacket and its
 * pycryptodome live) as an independent implementation to check Portico's crypto against.
 * Input and output are JSON with hex strings; the process is killed after a timeout.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';

let available: boolean | undefined;
/** Whether python3-impacket is importable (the suite installs it; skip rather than fail elsewhere). */
export async function hasImpacket(): Promise<boolean> {
  if (available !== undefined) return available;
  if (!existsSync(PYTHON)) return (available = false);
  try {
    await runPython('import impacket.ntlm, impacket.crypto\nout = {}', {});
    available = true;
  } catch {
    available = false;
  }
  return available;
}

/** Runs `code` with `inp` (a dict) in scope; the snippet assigns `out` (a dict), printed as JSON. */
export function runPython(code: string, inp: unknown, timeoutMs = 30_000): Promise<any> {
  const script = `import json, sys\ninp = json.loads(sys.stdin.read())\nh = bytes.fromhex\n${code}\nprint(json.dumps(out))\n`;
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`python exited ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout));
      } catch (e) {
        reject(new Error(`python output not JSON: ${stdout} ${stderr}`));
      }
    });
    child.stdin.end(JSON.stringify(inp));
  });
}
