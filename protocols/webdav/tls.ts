/**
 * HTTPS for WebDAV. Windows' WebClient sends Basic credentials only over HTTPS by default
 * (BasicAuthLevel 1), so TLS is first-class: `protocols.webdav.tls: { cert, key }` names PEM files,
 * and `portico cert generate --out DIR [--host NAME...]` writes a self-signed pair for a quick start
 * (clients must be told to trust it; use a real certificate in production).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { generate } from 'selfsigned';
import { VfsError } from '../../src/vfs/errors.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Reads the PEM files named in the config (relative paths: against the working directory). */
export function loadTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: string, p: string): Buffer => {
    try {
      return readFileSync(resolve(p));
    } catch (e) {
      throw new VfsError('EINVAL', `protocols.webdav.tls.${what}: cannot read ${p}: ${(e as Error).message}`);
    }
  };
  return { cert: read('cert', files.cert), key: read('key', files.key) };
}

export interface GeneratedCert {
  certFile: string;
  keyFile: string;
  fingerprint: string;
}

/** Generates a self-signed certificate for `hosts` (DNS names or IP addresses) valid for `days`. */
export async function generateSelfSigned(outDir: string, hosts: string[], days = 825): Promise<GeneratedCert> {
  const names = hosts.length > 0 ? hosts : ['localhost', '127.0.0.1', '::1'];
  const now = new Date();
  const pems = await generate([{ name: 'commonName', value: names[0]! }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + days * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
    ],
  });
  mkdirSync(outDir, { recursive: true });
  const certFile = join(outDir, 'portico.crt');
  const keyFile = join(outDir, 'portico.key');
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile, fingerprint: pems.fingerprint };
}
