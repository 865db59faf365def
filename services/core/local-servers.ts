// The three servers a development machine runs for `npm start` and for the `hub` CLI in a checkout:
// their default addresses, a bounded check that each answers, and what to say when one does not.
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describeError, toError } from './errors.js';
import { redactUrlPassword } from './logger.js';
import { closeRedis } from './redis.js';

/** Local defaults: the servers a development machine runs on their standard ports (compose.yaml too). */
export const LOCAL_DEFAULTS: Readonly<Record<string, string>> = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
  DATABASE_SCHEMA: 'hub',
  REDIS_URL: 'redis://127.0.0.1:6379',
  AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
  PORT: '8080',
  // The local simulators speak plain HTTP; production partners are reached over https only.
  OUTBOUND_ALLOW_HTTP: 'true',
};

/**
 * The root of the source checkout the code runs from (the repository's TypeScript sources sit
 * there); undefined in the image, which holds only the compiled `dist/`.
 */
export function checkoutRoot(moduleUrl: string): string | undefined {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (let up = 0; up < 5; up++) {
    if (existsSync(path.join(dir, 'package.json'))) {
      return existsSync(path.join(dir, 'services/hub/main.ts')) ? dir : undefined;
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

export const inCheckout = (moduleUrl: string): boolean => checkoutRoot(moduleUrl) !== undefined;

/**
 * Where `npm start` keeps its development keys (git-ignored): HUB_DEV_DIR, or `.dev/` at the root of
 * the checkout.
 */
export const devDir = (root: string, env: Record<string, string | undefined>): string =>
  env.HUB_DEV_DIR?.trim() || path.join(root, '.dev');

/** The file in the development directory that holds the generated DATA_ENCRYPTION_KEYS. */
export const DEV_DATA_KEYS_FILE = 'data-encryption-keys';

export type LocalServer = 'postgres' | 'redis' | 'rabbitmq';

/** Each server: its name, the variable that points at it, the version CI runs, and how to get one. */
export const LOCAL_SERVERS: Readonly<
  Record<
    LocalServer,
    {
      name: string;
      variable: 'DATABASE_URL' | 'REDIS_URL' | 'AMQP_URL';
      /** The major (or major.minor) version CI tests against; compose.yaml pins the same. */
      version: string;
      debianPackage: string;
      systemdUnit: string;
    }
  >
> = {
  postgres: {
    name: 'PostgreSQL',
    variable: 'DATABASE_URL',
    version: '15',
    debianPackage: 'postgresql',
    systemdUnit: 'postgresql',
  },
  redis: {
    name: 'Redis',
    variable: 'REDIS_URL',
    version: '7.0',
    debianPackage: 'redis-server',
    systemdUnit: 'redis-server',
  },
  rabbitmq: {
    name: 'RabbitMQ',
    variable: 'AMQP_URL',
    version: '3.10',
    debianPackage: 'rabbitmq-server',
    systemdUnit: 'rabbitmq-server',
  },
};

/** What a probe found: the server's version, or why it could not be used. */
type Probe =
  | { server: LocalServer; ok: true; version: string }
  | { server: LocalServer; ok: false; url: string; absent: boolean; reason: string };

/**
 * How long each server gets to answer. A local server answers a connect in milliseconds; 3 s
 * leaves room for a loaded machine and still tells a newcomer within seconds.
 */
const PROBE_TIMEOUT_MS = 3_000;

/** Errors that mean nothing listens there (as opposed to a server that answers and refuses). */
const ABSENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'PROBE_TIMEOUT',
]);

/** True when the error means nothing listens at the address (nothing answered, or not in time). */
export function isAbsent(err: Error): boolean {
  const codes = [
    (err as { code?: unknown }).code,
    ...((err as { errors?: unknown[] }).errors ?? []).map((e) => (e as { code?: unknown }).code),
  ];
  return (
    codes.some((c) => typeof c === 'string' && ABSENT.has(c)) ||
    /timeout|timed out/i.test(err.message)
  );
}

/** Resolves when the socket has closed (at most a second later), so a probe leaves nothing open. */
function socketClosed(socket: Socket | undefined): Promise<void> {
  if (!socket || socket.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Runs `attempt` with a deadline; `cleanup` releases whatever it opened when the deadline wins. */
async function bounded<T>(timeoutMs: number, attempt: Promise<T>, cleanup: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      cleanup();
      reject(
        Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), {
          code: 'PROBE_TIMEOUT',
        }),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([attempt, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function probe(server: LocalServer, url: string, run: () => Promise<string>): Promise<Probe> {
  try {
    return { server, ok: true, version: await run() };
  } catch (thrown) {
    const err = toError(thrown);
    return { server, ok: false, url, absent: isAbsent(err), reason: describeError(err) };
  }
}

function probePostgres(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Probe> {
  return probe('postgres', url, async () => {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
    });
    client.on('error', () => undefined);
    try {
      await bounded(
        timeoutMs + 500,
        client.connect(),
        () => void client.end().catch(() => undefined),
      );
      const r = await client.query<{ server_version: string }>('show server_version');
      return r.rows[0]?.server_version.split(' ')[0] ?? 'unknown';
    } finally {
      await client.end().catch(() => undefined);
    }
  });
}

function probeRedis(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Probe> {
  return probe('redis', url, async () => {
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    // connect() rejects with a bare "Connection is closed."; the socket's own error says why.
    let socketError: Error | undefined;
    redis.on('error', (e: unknown) => (socketError = toError(e)));
    try {
      await bounded(timeoutMs + 500, redis.connect(), () => redis.disconnect()).catch(
        (e: unknown) => {
          throw socketError ?? e;
        },
      );
      const info = await bounded(timeoutMs, redis.info('server'), () => redis.disconnect());
      return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    } finally {
      const ended = socketClosed(redis.stream);
      await closeRedis(redis);
      await ended;
    }
  });
}

function probeRabbitmq(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Probe> {
  return probe('rabbitmq', url, async () => {
    let opened: amqplib.ChannelModel | undefined;
    const connecting = amqplib.connect(url, { timeout: timeoutMs }).then((c) => (opened = c));
    try {
      const conn = await bounded(timeoutMs + 500, connecting, () => undefined);
      conn.on('error', () => undefined);
      const version = conn.connection.serverProperties.version;
      return typeof version === 'string' ? version : 'unknown';
    } finally {
      if (opened) {
        // amqplib's typings leave out the connection's socket, which outlives close() by a moment.
        const ended = socketClosed((opened.connection as unknown as { stream?: Socket }).stream);
        await opened.close().catch(() => undefined);
        await ended;
      } else {
        // A connection that opens after the deadline is closed as soon as it does.
        void connecting.then((c) => c.close()).catch(() => undefined);
      }
    }
  });
}

/** Probes the three servers at once; the whole check takes at most about PROBE_TIMEOUT_MS. */
export async function probeLocalServers(
  urls: { DATABASE_URL: string; REDIS_URL: string; AMQP_URL: string },
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<Probe[]> {
  return Promise.all([
    probePostgres(urls.DATABASE_URL, timeoutMs),
    probeRedis(urls.REDIS_URL, timeoutMs),
    probeRabbitmq(urls.AMQP_URL, timeoutMs),
  ]);
}

/** How to get a server running: a Debian package, or the repository's compose.yaml. */
export function howToStart(server: LocalServer): string[] {
  const s = LOCAL_SERVERS[server];
  const lines = [
    `Debian/Ubuntu:  sudo apt-get install -y ${s.debianPackage} && sudo systemctl start ${s.systemdUnit}`,
    `Docker/Podman:  docker compose up -d ${server}   (or: podman compose up -d ${server}; compose.yaml in the repository runs ${s.name} ${s.version})`,
  ];
  if (server === 'postgres') {
    lines.push(
      "Debian's PostgreSQL asks for a password over TCP: sudo -u postgres psql -c \"alter user postgres password 'postgres'\"",
      '  and DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres',
    );
  }
  lines.push(`Or point ${s.variable} at a ${s.name} that runs.`);
  return lines;
}

/** The message for the servers that failed their probe: one paragraph each, naming its variable. */
export function serversMissingMessage(failed: Extract<Probe, { ok: false }>[]): string {
  const names = failed.map((f) => LOCAL_SERVERS[f.server].name);
  const head = `cannot start: ${names.join(', ')} ${failed.length === 1 ? 'is' : 'are'} not usable.`;
  const parts = failed.map((f) => {
    const s = LOCAL_SERVERS[f.server];
    const where = `${s.name} at ${redactUrlPassword(f.url, s.variable)} (${s.variable})`;
    if (f.absent) {
      return [
        `${where}: nothing answers (${f.reason}).`,
        ...howToStart(f.server).map((l) => `  ${l}`),
      ].join('\n');
    }
    const fix = {
      postgres: 'check the user, password and database in DATABASE_URL',
      redis: 'check the password (and TLS: rediss://) in REDIS_URL',
      rabbitmq: 'check the user, password and vhost in AMQP_URL',
    }[f.server];
    const extra =
      f.server === 'postgres' && /password/i.test(f.reason)
        ? howToStart('postgres')
            .slice(2, 4)
            .map((l) => `  ${l}`)
        : [];
    return [`${where}: answers, but refused: ${f.reason}; ${fix}.`, ...extra].join('\n');
  });
  return [head, ...parts].join('\n\n');
}
