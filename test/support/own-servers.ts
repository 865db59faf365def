// A PostgreSQL cluster and a Redis server of a test's own, on free ports, for tests that stop and
// start them (an outage) without touching the machine's shared servers. PostgreSQL runs as the
// `postgres` user when the tests run as root (initdb refuses root).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from '../../services/core/net.js';
import { waitFor } from './context.js';
import { track } from './leaks.js';

const run = promisify(execFile);
const PG_BIN = process.env.TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** True when a server at `url` accepts a connection and answers `select 1`. */
async function answersSql(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}
export interface OwnServer {
  url: string;
  /** Starts it again on the same port (after `stop`). */
  start(): Promise<void>;
  /** Stops it at once (kill -9 for Redis, immediate shutdown for PostgreSQL). */
  stop(): Promise<void>;
  /** Stops it and removes its files. */
  close(): Promise<void>;
}

/** A Redis server on a free port, no persistence. */
export async function startOwnRedis(): Promise<OwnServer> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let untrack: () => void = () => undefined;
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    untrack = track(`own redis-server :${port}`);
    const c = child;
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    const probe = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    try {
      await waitFor(
        async () =>
          (await probe.connect().then(
            () => probe.ping(),
            () => undefined,
          )) === 'PONG',
        10_000,
        'own redis-server up',
      );
    } finally {
      probe.disconnect();
    }
  };
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    untrack();
  };
  await start();
  return { url, start, stop, close: stop };
}

/** A PostgreSQL cluster (trust authentication, user postgres, database postgres) on a free port. */
export async function startOwnPostgres(): Promise<OwnServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    chownSync(
      dir,
      Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
      Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
    );
  }
  const pgRun = (bin: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, bin), ...args])
      : run(path.join(PG_BIN, bin), args);
  await pgRun('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const untrack = track(`own postgres :${port}`);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let running = false;
  const start = async () => {
    if (running) return;
    await pgRun('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
    running = true;
    await waitFor(() => answersSql(url), 15_000, 'own postgres up');
  };
  const stop = async () => {
    if (!running) return;
    await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    running = false;
  };
  await start();
  return {
    url,
    start,
    stop,
    async close() {
      await stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      untrack();
    },
  };
}

/**
 * A PgBouncer of the test's own on a free port, in `pool_mode` (transaction by default) in front
 * of PostgreSQL at `target` (`host`, `port`, `dbname`), with trust authentication for `users`.
 * It runs as the `postgres` user when the tests run as root (PgBouncer refuses root).
 */
export async function startPgBouncer(
  target: { host: string; port: number; dbname: string },
  o: { users: string[]; serverConnections: number; poolMode?: 'transaction' | 'session' },
): Promise<{ port: number; close(): Promise<void> }> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-pgbouncer-'));
  const ini = path.join(dir, 'pgbouncer.ini');
  await writeFile(path.join(dir, 'users.txt'), o.users.map((u) => `"${u}" ""\n`).join(''));
  await writeFile(
    ini,
    [
      '[databases]',
      `${target.dbname} = host=${target.host} port=${target.port} dbname=${target.dbname}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `pool_mode = ${o.poolMode ?? 'transaction'}`,
      `default_pool_size = ${o.serverConnections}`,
      'reserve_pool_size = 0',
      'max_client_conn = 200',
      '',
    ].join('\n'),
  );
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const [uid, gid] = await Promise.all([
      run('id', ['-u', 'postgres']),
      run('id', ['-g', 'postgres']),
    ]);
    for (const f of [dir, ini, path.join(dir, 'users.txt')]) {
      chownSync(f, Number(uid.stdout.trim()), Number(gid.stdout.trim()));
    }
  }
  const child = spawn('pgbouncer', [...(asRoot ? ['-u', 'postgres'] : []), ini], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const untrack = track(`own pgbouncer :${port}`);
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
    await rm(dir, { recursive: true, force: true });
    untrack();
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${log}`);
        return answersSql(`postgres://${o.users[0]}@127.0.0.1:${port}/${target.dbname}`);
      },
      15_000,
      `own pgbouncer up (${log})`,
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { port, close };
}
