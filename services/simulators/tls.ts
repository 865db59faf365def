// Throw-away certificates for simulators, development and tests, made with the openssl CLI at
// start-up. `selfSignedCertificate` is its own CA (enough for Node clients that pin it, as the
// payment gateway's do). `createCertificateAuthority` is a small CA issuing server certificates,
// for TLS peers that refuse a self-signed leaf as its own trust anchor (Erlang's TLS, so RabbitMQ's
// listener and the HTTPS servers RabbitMQ calls).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Certificate {
  key: string;
  cert: string;
}

/** Subject alternative names of an issued certificate. */
export interface SubjectAltNames {
  dns?: string[];
  ip?: string[];
}

export interface CertificateAuthority extends Certificate {
  /** A server certificate (serverAuth) signed by this CA; by default for localhost and 127.0.0.1. */
  issue(commonName: string, altNames?: SubjectAltNames): Promise<Certificate>;
}

/** Certificates are valid for this many days: long enough for a run, short enough not to matter. */
const VALIDITY_DAYS = '2';

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

const DEFAULT_ALT_NAMES: Required<SubjectAltNames> = { dns: ['localhost'], ip: ['127.0.0.1'] };

// A minimal openssl configuration, so that the system's openssl.cnf adds nothing to the
// certificates.
const REQUEST_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

function subject(commonName: string): string {
  return `/CN=${commonName.replace(/[\\/]/g, (c) => `\\${c}`)}`;
}

function altNameList(names: SubjectAltNames): string {
  return [
    ...(names.dns ?? []).map((n) => `DNS:${n}`),
    ...(names.ip ?? []).map((n) => `IP:${n}`),
  ].join(',');
}

/** The key and certificate openssl wrote as key.pem and cert.pem. */
async function readCertificate(file: (name: string) => string): Promise<Certificate> {
  return {
    key: await readFile(file('key.pem'), 'utf8'),
    cert: await readFile(file('cert.pem'), 'utf8'),
  };
}

async function inTempDir<T>(fn: (file: (name: string) => string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-cert-'));
  try {
    return await fn((name) => path.join(dir, name));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function selfSignedCertificate(commonName = 'localhost'): Promise<Certificate> {
  return inTempDir(async (file) => {
    await run('openssl', [
      'req',
      '-x509',
      ...EC_KEY,
      '-days',
      VALIDITY_DAYS,
      '-subj',
      subject(commonName),
      '-addext',
      `subjectAltName=${altNameList(DEFAULT_ALT_NAMES)}`,
      '-keyout',
      file('key.pem'),
      '-out',
      file('cert.pem'),
    ]);
    return readCertificate(file);
  });
}

export async function createCertificateAuthority(
  commonName = 'Integration Hub test CA',
): Promise<CertificateAuthority> {
  const ca = await inTempDir(async (file) => {
    await writeFile(file('openssl.cnf'), REQUEST_CONFIG);
    await run('openssl', [
      'req',
      '-x509',
      '-config',
      file('openssl.cnf'),
      '-extensions',
      'ca',
      ...EC_KEY,
      '-days',
      VALIDITY_DAYS,
      '-subj',
      subject(commonName),
      '-keyout',
      file('key.pem'),
      '-out',
      file('cert.pem'),
    ]);
    return readCertificate(file);
  });

  async function issue(
    leafName: string,
    altNames: SubjectAltNames = DEFAULT_ALT_NAMES,
  ): Promise<Certificate> {
    const names = altNameList(altNames);
    if (names === '') {
      throw new Error('a server certificate needs at least one subject alternative name');
    }
    return inTempDir(async (file) => {
      await writeFile(file('openssl.cnf'), REQUEST_CONFIG);
      await writeFile(file('ca.pem'), ca.cert);
      await writeFile(file('ca-key.pem'), ca.key, { mode: 0o600 });
      await writeFile(
        file('leaf.ext'),
        [
          'basicConstraints = critical,CA:FALSE',
          'keyUsage = critical,digitalSignature',
          'extendedKeyUsage = serverAuth',
          `subjectAltName = ${names}`,
          'subjectKeyIdentifier = hash',
          'authorityKeyIdentifier = keyid',
          '',
        ].join('\n'),
      );
      await run('openssl', [
        'req',
        '-new',
        '-config',
        file('openssl.cnf'),
        ...EC_KEY,
        '-subj',
        subject(leafName),
        '-keyout',
        file('key.pem'),
        '-out',
        file('leaf.csr'),
      ]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        file('leaf.csr'),
        '-CA',
        file('ca.pem'),
        '-CAkey',
        file('ca-key.pem'),
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        VALIDITY_DAYS,
        '-extfile',
        file('leaf.ext'),
        '-out',
        file('cert.pem'),
      ]);
      return readCertificate(file);
    });
  }

  return { ...ca, issue };
}
