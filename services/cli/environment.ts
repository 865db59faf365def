// Where the `hub` CLI's settings come from, and what it says when the database is not what it
// expects: in a checkout it uses npm start's defaults, so the two meet on the same schema.
import type { DatabaseConfig } from '../core/config.js';
import { PgCode, describeError, toError } from '../core/errors.js';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  checkoutRoot,
  DEV_DATA_KEYS_FILE,
  devDir,
  howToStart,
  isAbsent,
  LOCAL_DEFAULTS,
} from '../core/local-servers.js';
import { redactUrlPassword } from '../core/logger.js';

/**
 * The environment the CLI reads: in a source checkout, npm start's defaults (DATABASE_URL of the
 * local PostgreSQL, schema `hub`, ...) and the data-encryption key npm start generated (so `hub
 * dead-letters show` opens sealed bodies) under whatever is set; in the image, the environment alone.
 */
export function cliEnvironment(
  env: Record<string, string | undefined> = process.env,
  /** The checkout's root; null in the image. */
  root: string | null = checkoutRoot(import.meta.url) ?? null,
): Record<string, string | undefined> {
  if (root === null) return { ...env };
  const keysFile = path.join(devDir(root, env), DEV_DATA_KEYS_FILE);
  const devKeys =
    !env.DATA_ENCRYPTION_KEYS?.trim() && existsSync(keysFile)
      ? { DATA_ENCRYPTION_KEYS: readFileSync(keysFile, 'utf8').trim() }
      : {};
  return { ...LOCAL_DEFAULTS, ...env, ...devKeys };
}

/** A database error a newcomer can act on: a schema nobody migrated, a server that is not there. */
export function explainDatabaseError(
  thrown: unknown,
  config: Pick<DatabaseConfig, 'DATABASE_URL' | 'DATABASE_SCHEMA'>,
): Error {
  const err = toError(thrown);
  const url = redactUrlPassword(config.DATABASE_URL, 'DATABASE_URL');
  if ((err as { code?: unknown }).code === PgCode.UNDEFINED_TABLE) {
    return new Error(
      `schema "${config.DATABASE_SCHEMA}" at ${url} is not migrated (${err.message}). ` +
        'Run `npx hub migrate` (npm start migrates on start), or set DATABASE_SCHEMA to the schema the hub uses.',
      { cause: err },
    );
  }
  if (isAbsent(err)) {
    return new Error(
      [
        `PostgreSQL at ${url} (DATABASE_URL): nothing answers (${describeError(err)}).`,
        ...howToStart('postgres').map((l) => `  ${l}`),
      ].join('\n'),
      { cause: err },
    );
  }
  return err;
}
