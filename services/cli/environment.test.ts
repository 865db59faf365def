import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { databaseEnv, loadConfig } from '../core/config.js';
import { inCheckout, LOCAL_DEFAULTS } from '../core/local-servers.js';
import { cliEnvironment, explainDatabaseError } from './environment.js';

describe('the CLI environment', () => {
  test("in a checkout, unset variables take npm start's defaults: its database and schema hub", () => {
    const config = loadConfig(databaseEnv, cliEnvironment({}, true));
    expect(config).toMatchObject({
      DATABASE_URL: LOCAL_DEFAULTS.DATABASE_URL,
      DATABASE_SCHEMA: 'hub',
    });
    expect(
      loadConfig(databaseEnv, cliEnvironment({ DATABASE_SCHEMA: 'mine' }, true)).DATABASE_SCHEMA,
    ).toBe('mine');
  });

  test('in the image, nothing is assumed: DATABASE_URL is required', () => {
    expect(() => loadConfig(databaseEnv, cliEnvironment({}, false))).toThrow(
      'DATABASE_URL is required',
    );
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
