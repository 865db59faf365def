// Development data-encryption key for `npm start` when DATA_ENCRYPTION_KEYS is not set: generated
// once into a git-ignored file readable only by its owner, so data written in one local run still
// decrypts in the next. Deployed services never use this: their entry points require the variable.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function devEncryptionKeys(dir: string): { value: string; file: string; created: boolean } {
  const file = path.join(dir, 'data-encryption-keys');
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const value = `dev1:${randomBytes(32).toString('base64')}`;
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, file, created: true };
}
