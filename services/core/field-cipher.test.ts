// Unit tests for encryption of personal data at rest and its key configuration.
import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from './config.js';
import { encryptionKeysEnv, FieldCipher } from './field-cipher.js';

const key = () => randomBytes(32);
const data = { fullName: 'Anna Petrova', phone: '+79165550102' };

describe('FieldCipher', () => {
  test('round-trips a value and the ciphertext does not contain it', () => {
    const c = new FieldCipher(new Map([['k1', key()]]));
    const sealed = c.encrypt(data, 'row:1');
    expect(sealed.toString('latin1')).not.toContain('Anna');
    expect(c.decrypt(sealed, 'row:1')).toEqual(data);
  });

  test('two encryptions of one value differ (random IV)', () => {
    const c = new FieldCipher(new Map([['k1', key()]]));
    expect(c.encrypt(data, 'row:1').equals(c.encrypt(data, 'row:1'))).toBe(false);
  });

  test('a ciphertext moved to another row does not decrypt', () => {
    const c = new FieldCipher(new Map([['k1', key()]]));
    expect(() => c.decrypt(c.encrypt(data, 'row:1'), 'row:2')).toThrow();
  });

  test('a tampered ciphertext does not decrypt', () => {
    const c = new FieldCipher(new Map([['k1', key()]]));
    const sealed = c.encrypt(data, 'row:1');
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 1;
    expect(() => c.decrypt(sealed, 'row:1')).toThrow();
  });

  test('after rotation the new first key encrypts and the old key still decrypts old values', () => {
    const k1 = key();
    const old = new FieldCipher(new Map([['k1', k1]])).encrypt(data, 'r');
    const rotated = new FieldCipher(
      new Map([
        ['k2', key()],
        ['k1', k1],
      ]),
    );
    expect(rotated.decrypt(old, 'r')).toEqual(data);
    expect(rotated.encrypt(data, 'r').subarray(2, 4).toString()).toBe('k2');
  });

  test('a value sealed with a key no longer configured names the missing key', () => {
    const sealed = new FieldCipher(new Map([['gone', key()]])).encrypt(data, 'r');
    expect(() => new FieldCipher(new Map([['k1', key()]])).decrypt(sealed, 'r')).toThrow(
      /"gone" is not configured/,
    );
  });
});

describe('DATA_ENCRYPTION_KEYS', () => {
  test('reads id:base64 pairs in order', () => {
    const a = key().toString('base64');
    const b = key().toString('base64');
    const { DATA_ENCRYPTION_KEYS } = loadConfig(encryptionKeysEnv, {
      DATA_ENCRYPTION_KEYS: `new:${a}, old:${b}`,
    });
    expect([...DATA_ENCRYPTION_KEYS.keys()]).toEqual(['new', 'old']);
  });

  test('a missing variable or a short key is named in the error', () => {
    expect(() => loadConfig(encryptionKeysEnv, {})).toThrow(/DATA_ENCRYPTION_KEYS is required/);
    expect(() =>
      loadConfig(encryptionKeysEnv, {
        DATA_ENCRYPTION_KEYS: `k:${randomBytes(16).toString('base64')}`,
      }),
    ).toThrow(ConfigError);
  });
});
