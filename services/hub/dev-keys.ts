// Development keys for `npm start`, generated once into git-ignored files readable only by their
// owner: the data-encryption key when DATA_ENCRYPTION_KEYS is not set, so data written in one local
// run still decrypts in the next; and the development authorization server's signing key when
// AUTH_SIGNING_JWKS is not set, so a local RabbitMQ given its public key accepts partners' tokens
// across restarts. Deployed services never use these: their entry points require the variables.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEV_DATA_KEYS_FILE } from '../core/local-servers.js';

export function devEncryptionKeys(dir: string): { value: string; file: string; created: boolean } {
  const file = path.join(dir, DEV_DATA_KEYS_FILE);
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const value = `dev1:${randomBytes(32).toString('base64')}`;
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, file, created: true };
}

/** The kid of the development signing key: RabbitMQ's `auth_oauth2.signing_keys.<kid>` names it. */
const DEV_SIGNING_KID = 'hub-dev';

/**
 * The development authorization server's RSA signing key, as AUTH_SIGNING_JWKS reads it, and its
 * public key as a PEM file (`publicKeyFile`) for a local RabbitMQ's `auth_oauth2.signing_keys`.
 */
export function devSigningKeys(dir: string): {
  jwks: string;
  publicKeyFile: string;
  created: boolean;
} {
  const file = path.join(dir, 'auth-signing-key.json');
  const publicKeyFile = path.join(dir, 'auth-signing-key.pub.pem');
  if (existsSync(file) && existsSync(publicKeyFile)) {
    return { jwks: readFileSync(file, 'utf8').trim(), publicKeyFile, created: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwks = JSON.stringify({
    keys: [
      { ...privateKey.export({ format: 'jwk' }), kid: DEV_SIGNING_KID, alg: 'RS256', use: 'sig' },
    ],
  });
  writeFileSync(file, `${jwks}\n`, { mode: 0o600 });
  // Public: a broker running as another user copies it from here.
  writeFileSync(publicKeyFile, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644 });
  return { jwks, publicKeyFile, created: true };
}
