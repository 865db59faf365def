// The servers the chaos run owns, so that it can break them without touching the machine's: a
// PostgreSQL cluster (initdb/pg_ctl, run as the postgres user when the harness is root), a
// redis-server without persistence (a restart loses its data, as a Redis pod without a volume
// does), and a RabbitMQ node (test/support/rabbitmq-node.ts) restarted with stop_app/start_app so
// that it keeps its port and its durable queues. They listen on 127.0.0.1, and on the run's bridge
// address too when pods run in network namespaces (netns.ts).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../services/core/net.js';
import { startRabbitNode, type RabbitNode } from '../support/rabbitmq-node.js';

const run = promisify(execFile);
const PG_BIN = process.env.CHAOS_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(100);
  }
}

/** Runs a PostgreSQL binary as the postgres user when we are root (initdb refuses root). */
function pgCommand(bin: string, args: string[]): [string, string[]] {
  const exe = path.join(PG_BIN, bin);
  return process.getuid?.() === 0
    ? ['runuser', ['-u', 'postgres', '--', exe, ...args]]
    : [exe, args];
}

/** The run's bridge (netns.ts): an address to listen on besides 127.0.0.1, and the subnet its pods come from. */
export interface Bridge {
  address: string;
  subnet: string;
}

export interface PgCluster {
  port: number;
  url: string;
  dir: string;
  /** `pg_ctl restart -m fast`: every backend is disconnected, the server is back in a second or two. */
  restart(): Promise<void>;
  /** pg_terminate_backend of every backend of the hub's database but this harness's own. */
  terminateBackends(): Promise<number>;
  stop(): Promise<void>;
  /** Synchronous immediate stop, for a harness that is exiting. */
  stopNow(): void;
}

export async function startPgCluster(bridge?: Bridge): Promise<PgCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'chaos-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = path.join(dir, 'data');
  const port = await freePort();
  const [initCmd, initArgs] = pgCommand('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  await run(initCmd, initArgs);
  // initdb trusts local connections only; the pods behind the bridge are trusted the same way.
  if (bridge) {
    appendFileSync(path.join(data, 'pg_hba.conf'), `host all all ${bridge.subnet} trust\n`);
  }
  const listen = ['127.0.0.1', ...(bridge ? [bridge.address] : [])].join(',');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=${listen} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB`;
  const ctl = async (...args: string[]) => {
    const [cmd, a] = pgCommand('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(dir, 'server.log'),
      '-o',
      opts,
      ...args,
    ]);
    await run(cmd, a, { timeout: 60_000 });
  };
  await ctl('-w', 'start');
  const admin = new pg.Client({
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
  });
  await admin.connect();
  await admin.query('create database hub');
  await admin.end();
  const url = `postgres://postgres@127.0.0.1:${port}/hub`;
  return {
    port,
    url,
    dir,
    async restart() {
      await ctl('-w', '-m', 'fast', 'restart');
    },
    async terminateBackends() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const r =
          await c.query(`select count(*) filter (where pg_terminate_backend(pid)) as n from pg_stat_activity
          where datname = 'hub' and pid <> pg_backend_pid() and backend_type = 'client backend'`);
        return Number((r.rows[0] as { n: string }).n);
      } finally {
        await c.end();
      }
    },
    async stop() {
      await ctl('-w', '-m', 'immediate', 'stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
    stopNow() {
      const [cmd, a] = pgCommand('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      spawnSync(cmd, a, { stdio: 'ignore', timeout: 10_000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisServer {
  port: number;
  url: string;
  /** kill -9 and a fresh start on the same port: every key is gone. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
  stopNow(): void;
}

export async function startRedis(bridge?: Bridge): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'chaos-redis-'));
  let child: ChildProcess | undefined;
  const ping = () =>
    new Promise<boolean>((resolve) => {
      execFile('redis-cli', ['-p', String(port), 'ping'], (err, out) =>
        resolve(!err && out.trim() === 'PONG'),
      );
    });
  const launch = async () => {
    // Protected mode refuses every client but loopback ones when there is no password; the bridge is
    // the run's own network (netns.ts), with no route from its namespaces anywhere else.
    const bind = bridge
      ? ['--bind', '127.0.0.1', bridge.address, '--protected-mode', 'no']
      : ['--bind', '127.0.0.1'];
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        ...bind,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--maxclients',
        '2000',
      ],
      { stdio: 'ignore' },
    );
    await until(ping, 15_000, 'redis-server to answer PING');
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async restart(downMs = 1_000) {
      await kill();
      await sleep(downMs);
      await launch();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    stopNow() {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Rabbit {
  node: RabbitNode;
  url: string;
  /** stop_app, a pause, start_app: every connection is dropped, queues and messages kept. */
  restart(downMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startRabbit(bridge?: Bridge): Promise<Rabbit> {
  // guest may log in from the bridge too (by default only over loopback): it is the run's own network.
  const config = bridge
    ? ({ port }: { port: number }) => [
        `listeners.tcp.bridge = ${bridge.address}:${port}`,
        'loopback_users = none',
      ]
    : undefined;
  const node = await startRabbitNode({ startTimeoutMs: 120_000, config });
  return {
    node,
    url: node.amqpUrl,
    async restart(downMs = 2_000) {
      const t0 = Date.now();
      await node.rabbitmqctl('stop_app');
      const t1 = Date.now();
      await sleep(downMs);
      const t2 = Date.now();
      await node.rabbitmqctl('start_app');
      await node.rabbitmqctl('await_startup', '--timeout', '60');
      return `stop_app ${((t1 - t0) / 1000).toFixed(1)} s, down ${(downMs / 1000).toFixed(0)} s, start_app ${((Date.now() - t2) / 1000).toFixed(1)} s`;
    },
    stop: () => node.stop(),
  };
}

export function exists(file: string): boolean {
  return existsSync(file);
}
