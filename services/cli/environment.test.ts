import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { databaseEnv, loadConfig } from '../core/config.js';
import { DEV_DATA_KEYS_FILE, inCheckout, LOCAL_DEFAULTS } from '../core/local-servers.js';
import { encryptionKeysEnv } from '../core/field-cipher.js';
import { cliEnvironment, explainDatabaseError } from './environment.js';

/** A checkout's root, with npm start's generated data key in `.dev/` when `key` is given. */
function checkout(key?: string): string {
  const root = mkdtempSync(path.join(tmpdir(), 'hub-checkout-'));
  if (key) {
    mkdirSync(path.join(root, '.dev'));
    writeFileSync(path.join(root, '.dev', DEV_DATA_KEYS_FILE), `${key}\n`);
  }
  return root;
}

describe('the CLI environment', () => {
  test("in a checkout, unset variables take npm start's defaults: its database and schema hub", () => {
    const config = loadConfig(databaseEnv, cliEnvironment({}, checkout()));
    expect(config).toMatchObject({
      DATABASE_URL: LOCAL_DEFAULTS.DATABASE_URL,
      DATABASE_SCHEMA: 'hub',
    });
    expect(
      loadConfig(databaseEnv, cliEnvironment({ DATABASE_SCHEMA: 'mine' }, checkout()))
        .DATABASE_SCHEMA,
    ).toBe('mine');
  });

  test('in the image, nothing is assumed: DATABASE_URL is required', () => {
    expect(() => loadConfig(databaseEnv, cliEnvironment({}, null))).toThrow(
      'DATABASE_URL is required',
    );
  });

  test('in a checkout, the data-encryption key npm start generated is used unless one is set (so sealed dead-letter bodies open)', () => {
    const key = `dev1:${Buffer.alloc(32, 7).toString('base64')}`;
    const root = checkout(key);
    expect(loadConfig(encryptionKeysEnv, cliEnvironment({}, root)).DATA_ENCRYPTION_KEYS.size).toBe(
      1,
    );
    expect(cliEnvironment({}, root).DATA_ENCRYPTION_KEYS).toBe(key);
    expect(cliEnvironment({ DATA_ENCRYPTION_KEYS: 'mine:x' }, root).DATA_ENCRYPTION_KEYS).toBe(
      'mine:x',
    );
    // HUB_DEV_DIR moves the development directory for the CLI as for npm start.
    const elsewhere = checkout(key);
    expect(
      cliEnvironment({ HUB_DEV_DIR: path.join(root, 'nowhere') }, elsewhere).DATA_ENCRYPTION_KEYS,
    ).toBeUndefined();
    expect(
      cliEnvironment({ HUB_DEV_DIR: path.join(root, '.dev') }, checkout()).DATA_ENCRYPTION_KEYS,
    ).toBe(key);
    expect(cliEnvironment({}, checkout()).DATA_ENCRYPTION_KEYS).toBeUndefined();
    expect(cliEnvironment({}, null).DATA_ENCRYPTION_KEYS).toBeUndefined();
  });

  test('a checkout is told from the image by the sources at the root', () => {
    expect(inCheckout(import.meta.url)).toBe(true);
    const image = mkdtempSync(path.join(tmpdir(), 'hub-image-'));
    mkdirSync(path.join(image, 'dist/services/cli'), { recursive: true });
    writeFileSync(path.join(image, 'package.json'), '{}');
    expect(inCheckout(pathToFileURL(path.join(image, 'dist/services/cli/main.js')).href)).toBe(
      false,
    );
  });

  test('an unmigrated schema and an absent server are explained, other errors pass through', () => {
    const config = {
      DATABASE_URL: 'postgres://u:secret@127.0.0.1:5432/db',
      DATABASE_SCHEMA: 'hub',
    };
    const undefinedTable = Object.assign(new Error('relation "allio_tasks" does not exist'), {
      code: '42P01',
    });
    const told = explainDatabaseError(undefinedTable, config).message;
    expect(told).toContain('schema "hub" at postgres://u:***@127.0.0.1:5432/db is not migrated');
    expect(told).toContain('npx hub migrate');
    expect(told).not.toContain('secret');
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
    });
    expect(explainDatabaseError(refused, config).message).toContain(
      'apt-get install -y postgresql',
    );
    const other = new Error('permission denied for table allio_tasks');
    expect(explainDatabaseError(other, config)).toBe(other);
  });
});
