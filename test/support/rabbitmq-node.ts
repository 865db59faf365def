// A throw-away RabbitMQ node next to the machine's default one, for tests that need broker
// configuration the shared node must not get (TLS listeners, plugins, other auth backends). Each
// node has its own name, ports, Erlang cookie and directories under a temp dir, so any number can
// run at once, in one Jest process or in parallel runs; `stop()` halts it and removes the dir.
//
// The node is started through the RabbitMQ distribution's own `rabbitmq-server` script, not a
// system wrapper (Debian's switches to the rabbitmq user and its home), as the current user with
// HOME at the node's dir: its cookie and files are its own, and /etc/rabbitmq is never read.
// epmd is shared with the default node (the node starts it if it is not running).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import { freePorts } from '../../services/core/net.js';
import { track } from './leaks.js';

const run = promisify(execFile);

export interface RabbitNodeTls {
  /** PEMs: the CA that issued `cert`, the listener's certificate and its key. */
  ca: string;
  cert: string;
  key: string;
}

/** Paths inside the node's dir, for configuration lines that name files, and the plain AMQP port. */
export interface RabbitNodePaths {
  dir: string;
  /** For a listener on another address with the same port. */
  port: number;
  /** The TLS option's CA, written to a file (when `tls` is given). */
  caFile?: string;
}

export interface RabbitNodeOptions {
  /** Plugins to enable, e.g. `rabbitmq_auth_backend_oauth2` (their dependencies come with them). */
  plugins?: string[];
  /** `rabbitmq.conf` lines added after the harness's own (listeners, TLS, auth backends). */
  config?: string[] | ((paths: RabbitNodePaths) => string[]);
  /** An AMQPS listener on 127.0.0.1 with this certificate; clients are not asked for one. */
  tls?: RabbitNodeTls;
  /** `auth_backends.N` in this order, e.g. `['rabbit_auth_backend_internal', 'rabbit_auth_backend_oauth2']`. */
  authBackends?: string[];
  /** How long the node may take to accept AMQP connections; 60 s by default. */
  startTimeoutMs?: number;
}

export interface RabbitNode {
  nodeName: string;
  /** The Erlang VM's process id. */
  pid: number;
  /** Plain AMQP on 127.0.0.1. */
  port: number;
  /** AMQPS on 127.0.0.1, when started with `tls`. */
  tlsPort?: number;
  /** guest/guest over plain AMQP, default vhost. */
  amqpUrl: string;
  dir: string;
  caFile?: string;
  /** Runs `rabbitmqctl` against this node; resolves with its standard output. */
  rabbitmqctl(...args: string[]): Promise<string>;
  /** The node's log (its console output: startup, log lines, crash reports), also after `stop()`. */
  logs(): string;
  /** Halts the node, waits until none of its processes is left and removes its dir. */
  stop(): Promise<void>;
}

export type RabbitTlsNode = RabbitNode & { tlsPort: number; caFile: string };

const DEFAULT_START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** The node's log kept in memory: its last this many characters. */
const MAX_OUTPUT = 4 * 1024 * 1024;
/** Ports the RabbitMQ CLI tools take for their own distribution (RABBITMQ_CTL_DIST_PORT_MIN..MAX). */
const CLI_DIST_PORTS = { min: 35672, max: 35682 };

// Runs the server in the background and halts it (TERM, which rabbitmq-server turns into a clean
// stop) when the standard input closes: the test process closes it in stop(), and the kernel
// closes it when the test process dies in any way, so a killed Jest leaves no broker behind and
// no dir ($2) either. Background jobs of a non-interactive shell read /dev/null, hence the copy of
// stdin on fd 3.
const SUPERVISOR = `
exec 3<&0
"$1" </dev/null 3<&- &
server=$!
(
  cat <&3 >/dev/null
  kill -TERM "$server" 2>/dev/null
  while kill -0 "$server" 2>/dev/null; do sleep 0.2; done
  rm -rf "$2"
) &
exec 3<&-
wait "$server"
`;

function scriptsDir(): string {
  const configured = process.env.TEST_RABBITMQ_SCRIPTS_DIR;
  if (configured) return configured;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'rabbitmq-server');
    if (!existsSync(candidate)) continue;
    // /usr/sbin/rabbitmq-server on Debian is a wrapper next to links to the real scripts.
    const beside = path.join(path.dirname(realpathSync(candidate)), 'rabbitmq-server');
    const real = realpathSync(existsSync(beside) ? beside : candidate);
    return path.dirname(real);
  }
  throw new Error(
    'rabbitmq-server is not on PATH (set TEST_RABBITMQ_SCRIPTS_DIR to its sbin directory)',
  );
}

/** pids of all processes descending from `root` now (the Erlang VM's helpers start own sessions). */
export async function descendants(root: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-e', '-o', 'pid=,ppid=']);
  const children = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid === undefined || ppid === undefined || Number.isNaN(pid)) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Running (a zombie left to init counts as gone: it holds nothing). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // "pid (comm) state ...": comm may hold spaces, the state follows its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * A node set up as production's partner broker: AMQPS with `tls`, the hub's own connections as
 * internal users, partners with OAuth 2.0 tokens whose keys come from `jwksUrl` (https, its
 * certificate checked against the same CA) and whose audience is RabbitMQ's resource server id.
 */
export function startPartnerBroker(o: {
  tls: RabbitNodeTls;
  jwksUrl: string;
  resourceServerId?: string;
}): Promise<RabbitTlsNode> {
  return startRabbitNode({
    tls: o.tls,
    plugins: ['rabbitmq_auth_backend_oauth2'],
    authBackends: ['rabbit_auth_backend_internal', 'rabbit_auth_backend_oauth2'],
    config: ({ caFile }) => [
      `auth_oauth2.resource_server_id = ${o.resourceServerId ?? 'rabbitmq'}`,
      `auth_oauth2.jwks_url = ${o.jwksUrl}`,
      `auth_oauth2.https.cacertfile = ${String(caFile)}`,
      'auth_oauth2.https.peer_verification = verify_peer',
      'auth_oauth2.https.hostname_verification = wildcard',
    ],
  });
}

export async function startRabbitNode(
  options: RabbitNodeOptions & { tls: RabbitNodeTls },
): Promise<RabbitTlsNode>;
export async function startRabbitNode(options?: RabbitNodeOptions): Promise<RabbitNode>;
export async function startRabbitNode(options: RabbitNodeOptions = {}): Promise<RabbitNode> {
  const sbin = scriptsDir();
  const nodeName = `hubtest-${process.pid}-${randomBytes(4).toString('hex')}@localhost`;
  const [port, distPort, tlsPort] = await freePorts(options.tls ? 3 : 2, {
    accept: (p) => p < CLI_DIST_PORTS.min || p > CLI_DIST_PORTS.max,
  });
  if (port === undefined || distPort === undefined) throw new Error('no free ports');
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-rabbitmq-'));
  const file = (name: string) => path.join(dir, name);

  // The log goes to the console (captured here) rather than to a file: the file handler buffers
  // its writes until a later one, so a test could not read what just happened.
  const config = [
    `listeners.tcp.default = 127.0.0.1:${port}`,
    'log.file = false',
    'log.console = true',
    'log.console.level = info',
    'log.console.use_colors = off',
  ];
  let caFile: string | undefined;
  if (options.tls && tlsPort !== undefined) {
    caFile = file('ca.pem');
    await writeFile(caFile, options.tls.ca);
    await writeFile(file('cert.pem'), options.tls.cert);
    await writeFile(file('key.pem'), options.tls.key, { mode: 0o600 });
    config.push(
      `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
      `ssl_options.cacertfile = ${caFile}`,
      `ssl_options.certfile = ${file('cert.pem')}`,
      `ssl_options.keyfile = ${file('key.pem')}`,
      'ssl_options.verify = verify_none',
      'ssl_options.fail_if_no_peer_cert = false',
    );
  }
  (options.authBackends ?? []).forEach((backend, i) =>
    config.push(`auth_backends.${i + 1} = ${backend}`),
  );
  const extra =
    typeof options.config === 'function'
      ? options.config({ dir, caFile, port })
      : (options.config ?? []);
  config.push(...extra);
  await writeFile(file('rabbitmq.conf'), `${config.join('\n')}\n`);
  await writeFile(file('enabled_plugins'), `[${(options.plugins ?? []).join(',')}].\n`);
  await writeFile(file('rabbitmq-env.conf'), '');
  await writeFile(file('.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase(), {
    mode: 0o400,
  });
  await mkdir(file('mnesia'));
  await mkdir(file('log'));

  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONF_ENV_FILE: file('rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: file('rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: file('advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: file('enabled_plugins'),
    RABBITMQ_MNESIA_BASE: file('mnesia'),
    RABBITMQ_LOG_BASE: file('log'),
    RABBITMQ_PID_FILE: file('rabbitmq.pid'),
    // No crash dump: the dir goes with stop(), the log says why the VM halted.
    ERL_CRASH_DUMP_BYTES: '0',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    // Erlang distribution on loopback only, as the AMQP listeners.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };

  const child = spawn(
    '/bin/sh',
    ['-c', SUPERVISOR, 'rabbitmq-node', path.join(sbin, 'rabbitmq-server'), dir],
    {
      cwd: dir,
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const untrack = track(`rabbitmq node ${nodeName}`);
  // A forgotten node must not keep the test process alive: the leak check reports it, and the
  // supervisor halts it when the process exits. (Child stdio pipes are net.Sockets.)
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as net.Socket | null)?.unref();
  }
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString();
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // Writes after the supervisor is gone must not throw at the test process.
  child.stdin?.on('error', () => {});
  let exitCode: number | string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, sig) => {
      exitCode = code ?? sig ?? -1;
      resolve();
    }),
  );

  const logs = () => output;

  const rabbitmqctl = async (...args: string[]) =>
    (
      await run(path.join(sbin, 'rabbitmqctl'), ['-n', nodeName, ...args], {
        env,
        cwd: dir,
        timeout: 30_000,
      })
    ).stdout;

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= halt());

  async function halt(): Promise<void> {
    const pgid = child.pid;
    const pids = pgid === undefined ? [] : await descendants(pgid).catch(() => []);
    if (exitCode === undefined) {
      await rabbitmqctl('stop').catch(() => undefined);
      if (!(await waitUntil(() => exitCode !== undefined, STOP_TIMEOUT_MS)) && pgid !== undefined) {
        signal(-pgid, 'SIGKILL');
      }
    }
    await exited;
    child.stdin?.end();
    if (pgid !== undefined) signal(-pgid, 'SIGKILL');
    // The VM's port helpers run in sessions of their own and end when the VM does.
    if (!(await waitUntil(() => !pids.some(alive), 5000))) {
      pids.forEach((pid) => signal(pid, 'SIGKILL'));
    }
    await waitUntil(() => !pids.some(alive), 5000);
    await rm(dir, { recursive: true, force: true });
    untrack();
  }

  const amqpUrl = `amqp://guest:guest@127.0.0.1:${port}`;
  const node: RabbitNode = {
    nodeName,
    pid: 0,
    port,
    tlsPort,
    amqpUrl,
    dir,
    caFile,
    rabbitmqctl,
    logs,
    stop,
  };

  try {
    await awaitStartup(node, options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS, () => exitCode);
    node.pid = Number(await readFile(file('rabbitmq.pid'), 'utf8'));
    // A plugin that cannot be found is only warned about; here it fails the start.
    const complete = /Server startup complete; \d+ plugins started\.\n((?:.* \* \S+\n)*)/;
    await waitUntil(() => complete.test(output), 5000);
    const started = new Set(
      [...(complete.exec(output)?.[1] ?? '').matchAll(/ \* (\S+)\n/g)].map((m) => m[1]),
    );
    const missing = (options.plugins ?? []).filter((p) => !started.has(p));
    if (missing.length > 0) {
      throw new Error(
        `RabbitMQ node ${nodeName} started without the plugins ${missing.join(', ')}`,
      );
    }
  } catch (err) {
    const text = logs();
    await stop();
    throw new Error(`${(err as Error).message}\n--- node ${nodeName} ---\n${text.slice(-20_000)}`, {
      cause: err,
    });
  }
  return node;
}

/** Until the node takes an AMQP connection (as guest) and reports its boot, plugins included, done. */
async function awaitStartup(
  node: RabbitNode,
  timeoutMs: number,
  exitCode: () => number | string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const code = exitCode();
    if (code !== undefined) {
      throw new Error(`RabbitMQ node ${node.nodeName} exited (${String(code)}) while starting`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `RabbitMQ node ${node.nodeName} did not accept AMQP connections within ${timeoutMs} ms (${String(lastError)})`,
      );
    }
    try {
      const conn = await amqplib.connect(node.amqpUrl, { timeout: 2000 });
      await conn.close();
      break;
    } catch (err) {
      lastError = err;
      await sleep(200);
    }
  }
  const seconds = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
  await node.rabbitmqctl('await_startup', '--timeout', String(seconds));
}
