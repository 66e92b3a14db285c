/**
 * The one self-signed certificate set-up for WebTransport tests in every workspace (relay, gateway agent,
 * web client): a P-256 key and certificate for 127.0.0.1 made with openssl in a temp dir, valid 2 days
 * because `serverCertificateHashes` pins only certificates valid for at most 14 days, and its SHA-256 pin
 * (of the DER) as bytes and as hex. openssl is a test prerequisite (scripts/test-prerequisites.mjs).
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCertificate {
  /** The temp dir holding both files (removed by {@link SelfSignedCertificate.remove}). */
  dir: string;
  certPath: string;
  keyPath: string;
  /** PEM texts of the two files. */
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate's DER: bytes (for `serverCertificateHashes`) and lower-case hex. */
  sha256: Uint8Array;
  sha256Hex: string;
  remove(): void;
}

/** Make a fresh self-signed P-256 certificate for `127.0.0.1` (`prefix` names the temp dir). */
export function makeSelfSignedCertificate(prefix = 'scanrelay-test-cert-'): SelfSignedCertificate {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  // biome-ignore format: one openssl flag and its value a line reads best
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const certPem = readFileSync(certPath, 'utf8');
  const digest = createHash('sha256').update(new X509Certificate(certPem).raw).digest();
  return {
    dir,
    certPath,
    keyPath,
    certPem,
    keyPem: readFileSync(keyPath, 'utf8'),
    sha256: new Uint8Array(digest),
    sha256Hex: digest.toString('hex'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
