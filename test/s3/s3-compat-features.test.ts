/**
 * S3-compatible stores without optional APIs (issue 16): a store answering 501 NotImplemented (or
 * 405) to ListMultipartUploads, AbortMultipartUpload, UploadPartCopy or a conditional PUT is a
 * store lacking a feature, not a store that is down. Through a proxy that answers those requests
 * itself (test/helpers/answer-proxy.ts) in front of s3rver: the circuit stays closed even at a
 * threshold of one failure, the feature is switched off once (one warning, a metric at 0) and
 * what needs it degrades and keeps working; a store answering 503 or not answering at all still
 * opens the circuit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseS3Source } from '../../backends/s3/config.ts';
import { isUnsupportedAnswer } from '../../backends/s3/features.ts';
import { classify } from '../../backends/s3/retry.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { makeVfsEnv, RW } from '../helpers/vfs-env.ts';
import { startAnswerProxy, type AnswerProxy } from '../helpers/answer-proxy.ts';
import { pattern, put, rejectsWith, text, useS3Env, type S3Env } from './fixture.ts';

const MiB = 1024 * 1024;
let env: S3Env;
useS3Env((e) => (env = e));

let ap: AnswerProxy;
afterEach(async () => {
  await ap?.stop();
});

function capture(): { logger: pino.Logger; lines: { feature?: string; msg: string; level: number }[] } {
  const lines: { feature?: string; msg: string; level: number }[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  return { logger, lines };
}

const NOT_IMPLEMENTED = { status: 501, code: 'NotImplemented' };

describe('optional S3 APIs the store lacks', () => {
  it('ListMultipartUploads answered 501: start-up recovery is skipped, one warning, metric 0, circuit closed, requests work', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: (r) => r.op === 'ListMultipartUploads', ...NOT_IMPLEMENTED });
    const metrics = new Metrics({ defaultMetrics: false });
    const { logger, lines } = capture();
    const b = env.backend({ endpoint: ap.endpoint, circuitFailureThreshold: 1, metrics, metricsLabel: 'compat', logger, stateDir: env.tempDir() });
    expect(await b.recover()).toBe(0);
    expect(b.transport.breaker.state).toBe('closed');
    // Detected once: the next recovery does not ask again.
    expect(await b.recover()).toBe(0);
    expect(ap.count('ListMultipartUploads')).toBe(1);
    await rejectsWith(b.transport.listUploads(b.keys.prefix), 'ENOTSUP');
    await put(b, '/f', 'still working');
    expect(await text(b, '/f')).toBe('still working');
    expect(b.transport.breaker.state).toBe('closed');
    const warned = lines.filter((l) => l.feature !== undefined);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ feature: 'multipartListing', level: 40 });
    expect(warned[0]!.msg).toMatch(/lacks multipartListing \(the store answered HTTP 501 NotImplemented\): start-up recovery of orphaned multipart uploads is skipped/);
    const m = await metrics.metricsText();
    expect(m).toContain('portico_s3_feature_available{share="compat",feature="multipartListing"} 0');
    expect(m).toContain('portico_s3_feature_available{share="compat",feature="uploadPartCopy"} 1');
    expect(m).toContain('portico_s3_circuit_state{backend="compat"} 0');
  });

  it('AbortMultipartUpload answered 405: aborts stop, the failed upload still fails cleanly, circuit closed', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: (r) => r.op === 'AbortMultipartUpload', status: 405, code: 'MethodNotAllowed' });
    const b = env.backend({ endpoint: ap.endpoint, circuitFailureThreshold: 1, partSize: 5 * MiB });
    const w = await b.createWriter('/big', { sizeHint: 12 * MiB });
    await w.write(pattern(6 * MiB, 3));
    await w.abort();
    const w2 = await b.createWriter('/big2', { sizeHint: 12 * MiB });
    await w2.write(pattern(6 * MiB, 4));
    await w2.abort();
    expect(ap.count('AbortMultipartUpload')).toBe(1);
    expect(b.transport.features.has('multipartAbort')).toBe(false);
    await rejectsWith(b.stat('/big'), 'ENOENT');
    // Recovery needs aborts: skipped without listing.
    expect(await b.recover()).toBe(0);
    expect(ap.count('ListMultipartUploads')).toBe(0);
    expect(b.transport.breaker.state).toBe('closed');
  });

  it('UploadPartCopy answered 501: a multipart copy streams its ranges through the gateway, exact; later copies do not try it', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: (r) => r.op === 'UploadPartCopy', ...NOT_IMPLEMENTED });
    const b = env.backend({ endpoint: ap.endpoint, circuitFailureThreshold: 1, multipartCopyThreshold: 5 * MiB });
    const data = pattern(12 * MiB, 7);
    await env.rawPut(b.keys.fileKey('/big'), data);
    expect((await b.copy('/big', '/copy1')).size).toBe(12 * MiB);
    expect((await env.rawGet(b.keys.fileKey('/copy1')))!.equals(data)).toBe(true);
    // The parts went out concurrently: each that was in flight got its 501, none is sent later.
    const tried = ap.count('UploadPartCopy');
    expect(tried).toBeGreaterThanOrEqual(1);
    expect(tried).toBeLessThanOrEqual(3);
    // Three 5 MiB-or-less parts, each one ranged GET of the source and one UploadPart.
    expect(ap.count('UploadPart', 200)).toBe(3);
    expect(ap.count('GetObject', 206)).toBe(3);
    await b.copy('/big', '/copy2');
    expect((await env.rawGet(b.keys.fileKey('/copy2')))!.equals(data)).toBe(true);
    expect(ap.count('UploadPartCopy')).toBe(tried);
    expect(b.transport.breaker.state).toBe('closed');
    // The copy condition is kept: another version of the source fails like the store's 412.
    const id = await b.transport.createUpload(b.keys.fileKey('/copy3'), {}, undefined);
    await rejectsWith(b.transport.uploadPartCopy(b.keys.fileKey('/copy3'), id, 1, b.keys.fileKey('/big'), 0, 10, undefined, '"0123456789abcdef0123456789abcdef"'), 'EEXIST');
    await rejectsWith(b.transport.uploadPartCopy(b.keys.fileKey('/copy3'), id, 1, b.keys.fileKey('/missing'), 0, 10), 'ENOENT');
    await rejectsWith(b.copy('/missing', '/copy4'), 'ENOENT');
    await b.transport.abortUpload(b.keys.fileKey('/copy3'), id);
  });

  it('UploadPartCopy answered 501: a patched large file through the VFS uploads whole and exact; a conflicting close is ESTALE', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: (r) => r.op === 'UploadPartCopy', ...NOT_IMPLEMENTED });
    const b = env.backend({ endpoint: ap.endpoint, circuitFailureThreshold: 1 });
    const ve = makeVfsEnv(b);
    try {
      const s = ve.session();
      const model = pattern(24 * MiB, 31);
      await env.rawPut(b.keys.fileKey('/v.bin'), model);
      const h = await s.open('s', '/v.bin', { access: RW, owner: 'o', expect: 'file' });
      await s.write(h, 12 * MiB, Buffer.from('patched'));
      model.write('patched', 12 * MiB);
      await s.close(h);
      expect((await env.rawGet(b.keys.fileKey('/v.bin')))!.equals(model)).toBe(true);
      expect(ap.count('UploadPartCopy')).toBe(1);
      expect(b.transport.breaker.state).toBe('closed');
      const h2 = await s.open('s', '/v.bin', { access: RW, owner: 'o', expect: 'file' });
      await s.write(h2, 15 * MiB, Buffer.from('late'));
      await env.rawPut(b.keys.fileKey('/v.bin'), Buffer.from('someone else'));
      await rejectsWith(s.close(h2), 'ESTALE');
      expect((await env.rawGet(b.keys.fileKey('/v.bin')))!.toString()).toBe('someone else');
    } finally {
      await ve.destroy();
    }
  });

  it('a conditional PUT answered 501: exclusive creates go on without If-None-Match (HEAD under the key lock)', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: (r) => r.op === 'PutObject' && r.headers['if-none-match'] !== undefined, ...NOT_IMPLEMENTED });
    const b = env.backend({ endpoint: ap.endpoint, circuitFailureThreshold: 1 });
    await put(b, '/x', 'one', { exclusive: true });
    expect(await text(b, '/x')).toBe('one');
    await put(b, '/y', 'two', { exclusive: true });
    await rejectsWith(put(b, '/x', 'again', { exclusive: true }), 'EEXIST');
    expect(ap.log.filter((e) => e.op === 'PutObject' && e.status === 501)).toHaveLength(1);
    expect(b.transport.features.has('conditionalWrites')).toBe(false);
    expect(b.transport.breaker.state).toBe('closed');
  });

  it('features named in disableFeatures are never tried', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    const b = env.backend({ endpoint: ap.endpoint, multipartCopyThreshold: 5 * MiB, disableFeatures: ['uploadPartCopy', 'multipartListing'] });
    const data = pattern(6 * MiB, 9);
    await env.rawPut(b.keys.fileKey('/big'), data);
    await b.copy('/big', '/c');
    expect((await env.rawGet(b.keys.fileKey('/c')))!.equals(data)).toBe(true);
    expect(await b.recover()).toBe(0);
    expect(ap.count('UploadPartCopy') + ap.count('ListMultipartUploads')).toBe(0);
  });
});

describe('answers of a store that is not finished writing', () => {
  it('headAfterPut: a HEAD right after our PUT showing our ETag with another size is asked again, not cached (stock s3rver answers PUTs early)', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    const b = env.backend({ endpoint: ap.endpoint, metaTtlMs: 60_000, headAfterPut: true });
    let puts = 0;
    ap.rewrite({ match: (r) => r.op === 'HeadObject' && puts > 0, headers: (h) => void (h['content-length'] = '0') });
    const w = await b.createWriter('/f');
    await w.write(Buffer.from('AFTER!'));
    puts++;
    ap.log.length = 0;
    const st = await w.commit();
    expect(st.size).toBe(6);
    expect((await b.stat('/f')).size).toBe(6);
    expect(await text(b, '/f')).toBe('AFTER!');
    // PUT, the HEAD that saw 0 bytes, the HEAD that saw 6; nothing after (stat cached, content
    // seeded from the write). The listing a create sends beside its upload (learnMembership) may
    // land in this window: not what this counts.
    expect(ap.log.map((e) => e.op).filter((op) => op !== 'ListObjectsV2')).toEqual(['PutObject', 'HeadObject', 'HeadObject']);
  });
});

describe('the size of what was just written', () => {
  it('a multipart object whose HEAD keeps showing another size than written fails the commit with EIO; a passing one is asked again', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    const b = env.backend({ endpoint: ap.endpoint, partSize: 5 * MiB });
    let armed = false;
    ap.rewrite({ match: (r) => armed && r.op === 'HeadObject', headers: (h) => void (h['content-length'] = String(5 * MiB)), times: 1 });
    const data = pattern(6 * MiB, 5);
    const w = await b.createWriter('/m', { sizeHint: data.length });
    await w.write(data);
    armed = true;
    expect((await w.commit()).size).toBe(6 * MiB);
    ap.rewrite({ match: (r) => armed && r.op === 'HeadObject', headers: (h) => void (h['content-length'] = String(5 * MiB)), times: 100 });
    const w2 = await b.createWriter('/m2', { sizeHint: data.length });
    await w2.write(data);
    const e = await w2.commit().then(() => undefined, (err: unknown) => err as Error);
    expect(e?.message).toMatch(/the store reports 5242880 bytes for the object just written \(6291456 were written\)/);
  });
});

describe('what still opens the circuit', () => {
  it('503 ServiceUnavailable on every request opens it', async () => {
    ap = await startAnswerProxy(env.s3.endpoint);
    ap.answer({ match: () => true, status: 503, code: 'ServiceUnavailable' });
    const b = env.backend({ endpoint: ap.endpoint, maxAttempts: 2, circuitFailureThreshold: 3, circuitCooldownMs: 60_000 });
    await rejectsWith(b.stat('/a'), 'EIO');
    await rejectsWith(b.stat('/b'), 'EIO');
    expect(b.transport.breaker.state).toBe('open');
    const e = await b.stat('/c').catch((err: unknown) => err as Error);
    expect(String((e as Error).message)).toMatch(/circuit open/);
  });

  it('requests that time out open it', async () => {
    env.proxy.inject({ kind: 'hang', times: 4, match: (r) => r.op === 'HeadObject' });
    const b = env.backend({ maxAttempts: 2, requestTimeoutMs: 100, circuitFailureThreshold: 3, circuitCooldownMs: 60_000 });
    await rejectsWith(b.stat('/slow1'), 'ETIMEDOUT');
    // The third timed-out attempt opens the circuit; the retry after it is refused at once.
    await rejectsWith(b.stat('/slow2'), 'EIO');
    expect(b.transport.breaker.state).toBe('open');
    env.proxy.clearFaults();
  });
});

describe('classification and options', () => {
  const answer = (status: number, code: string): Error => Object.assign(new Error(code), { name: code, Code: code, $metadata: { httpStatusCode: status } });

  it('501 and NotImplemented are answers about a feature; 500/502/503/504 are endpoint failures; certificate errors are neither', () => {
    expect(classify(answer(501, 'NotImplemented'), false)).toMatchObject({ kind: 'unsupported', retryable: false });
    expect(classify(answer(400, 'NotImplemented'), false)).toMatchObject({ kind: 'unsupported', retryable: false });
    for (const [status, code] of [[500, 'InternalError'], [502, 'BadGateway'], [503, 'ServiceUnavailable'], [504, 'GatewayTimeout']] as const) {
      expect(classify(answer(status, code), false)).toMatchObject({ kind: 'server', retryable: true });
    }
    expect(classify(answer(405, 'MethodNotAllowed'), false)).toMatchObject({ kind: 'client', retryable: false });
    const cert = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(classify(cert, false)).toMatchObject({ kind: 'tls', retryable: false, code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(classify(Object.assign(new Error('wrapped'), { cause: cert }), false)).toMatchObject({ kind: 'tls' });
    expect(isUnsupportedAnswer(answer(501, 'NotImplemented'))).toBe(true);
    expect(isUnsupportedAnswer(answer(405, 'MethodNotAllowed'))).toBe(true);
    expect(isUnsupportedAnswer(Object.assign(new Error('x'), { cause: answer(501, 'NotImplemented') }))).toBe(true);
    expect(isUnsupportedAnswer(answer(400, 'InvalidArgument'))).toBe(false);
    expect(isUnsupportedAnswer(answer(503, 'ServiceUnavailable'))).toBe(false);
  });

  it('tls.ca, AWS_CA_BUNDLE and disableFeatures from share options and the environment', () => {
    expect(parseS3Source('s3://b', {}, { AWS_CA_BUNDLE: '/etc/ca.pem' })).toMatchObject({ tlsCa: '/etc/ca.pem', tlsCaSource: 'AWS_CA_BUNDLE' });
    expect(parseS3Source('s3://b', { tls: { ca: '/x.pem' } }, { AWS_CA_BUNDLE: '/etc/ca.pem' })).toMatchObject({ tlsCa: '/x.pem', tlsCaSource: 'shares[].options.tls.ca' });
    expect(parseS3Source('s3://b', { tls: { ca: '/x.pem' }, tlsCaSource: 's3.tls.ca' }, {})).toMatchObject({ tlsCaSource: 's3.tls.ca' });
    expect(parseS3Source('s3://b', {}, {}).tlsCa).toBeUndefined();
    expect(() => parseS3Source('s3://b', { tls: '/x.pem' }, {})).toThrow(/tls/);
    expect(parseS3Source('s3://b', { disableFeatures: ['uploadPartCopy'] }, {}).disableFeatures).toEqual(['uploadPartCopy']);
    expect(() => parseS3Source('s3://b', { disableFeatures: ['versioning'] }, {})).toThrow(/disableFeatures/);
    // Path-style exactly when an endpoint is set, unless the share says otherwise.
    expect(parseS3Source('s3://b', { endpoint: 'http://h:9000' }, {}).forcePathStyle).toBe(true);
    expect(parseS3Source('s3://b', { endpoint: 'http://h:9000', forcePathStyle: false }, {}).forcePathStyle).toBe(false);
    expect(parseS3Source('s3://b', {}, {}).forcePathStyle).toBe(false);
  });
});
