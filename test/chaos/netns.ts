// A network of the chaos run's own for the pods a partition cuts off: a Linux bridge that carries
// the harness address (the run's servers listen on it besides 127.0.0.1), and for each such pod a
// network namespace joined to the bridge by a veth pair. Cutting a pod off takes the host end of its
// veth down: every packet from and to it is dropped without a word, as in a real partition, and the
// TCP connections on both sides stay open and resume when the link is back. The namespaces have no
// route beyond the bridge's /24 (no default route): the outside and the machine's services on
// 127.0.0.1 are out of their reach (one listening on every address answers on the bridge address,
// as on any address of the machine). Every name starts with `hc-<pid of the run>`, so that a run
// removes what a crashed one left and leaves a live one's alone.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const NET_PREFIX = 'hc-';
/** The runs' /24s are taken from 10.213.0.0/16. */
const NET_BASE = '10.213';
/** Addresses .2–.251 of the /24 go to pods, in turn. */
const POD_ADDRESSES = 250;

export interface PodNet {
  /** The namespace (`ip netns`) and the host end of its veth, both `hc-<pid>-<n>`. */
  name: string;
  /** The pod's address: where the harness reaches its /healthz and Prometheus scrapes it. */
  address: string;
  /** The command line that runs `argv` inside the namespace (ip execs it: the pid stays the program's). */
  wrap(argv: string[]): string[];
  /** Takes the link down: nothing passes either way until restore(). */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Deletes the namespace and its veth (after the pod has exited). */
  remove(): Promise<void>;
}

export interface IsolationNet {
  bridge: string;
  /** The address the run's servers listen on for the pods in namespaces. */
  hostAddress: string;
  /** The bridge's /24, e.g. `10.213.7.0/24`. */
  subnet: string;
  addPod(): Promise<PodNet>;
  /** Deletes every namespace and veth of the run, then the bridge. */
  close(): Promise<void>;
  /** The same, for an exit handler. */
  closeNow(): void;
}

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 15_000 })).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`, {
      cause: e,
    });
  }
}

function ipNow(args: string[]): string {
  try {
    return execFileSync('ip', args, {
      timeout: 15_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The run a name belongs to: `hc-<pid>` (a bridge) or `hc-<pid>-<n>` (a namespace, a veth). */
export function ownerPid(name: string): number | undefined {
  const m = /^hc-(\d+)(?:-\d+)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Deletes namespaces, veths and bridges named for a run whose process is gone (a crash, a kill -9
 * of an earlier run); returns their names.
 */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  const stale = (name: string) => {
    const pid = ownerPid(name);
    return pid !== undefined && pid !== process.pid && !alive(pid);
  };
  for (const line of ipNow(['netns', 'list']).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (stale(name)) {
      ipNow(['netns', 'del', name]);
      removed.push(name);
    }
  }
  for (const line of ipNow(['-o', 'link', 'show']).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    if (stale(name)) {
      ipNow(['link', 'del', name]);
      removed.push(name);
    }
  }
  return removed;
}

/** A /24 of 10.213.0.0/16 that no interface of the machine is in (another run's bridge, say). */
async function freeSubnet(): Promise<number> {
  const used = new Set(
    [...(await ip(['-o', '-4', 'addr', 'show'])).matchAll(/inet 10\.213\.(\d+)\./g)].map((m) =>
      Number(m[1]),
    ),
  );
  for (let i = 0; i < 254; i++) {
    const third = ((process.pid + i) % 254) + 1;
    if (!used.has(third)) return third;
  }
  throw new Error('every /24 of 10.213.0.0/16 is in use');
}

/**
 * Sets up the bridge and proves that a namespace can be joined to it (one made and deleted), so
 * that a machine without the permission says so now rather than at the fault. Throws with ip's own
 * words when it cannot.
 */
export async function createIsolationNet(): Promise<IsolationNet> {
  const bridge = `${NET_PREFIX}${process.pid}`;
  const third = await freeSubnet();
  const hostAddress = `${NET_BASE}.${third}.1`;
  const pods = new Set<PodNet>();
  let next = 0;

  async function addPod(): Promise<PodNet> {
    const n = next++;
    const name = `${bridge}-${n}`;
    const address = `${NET_BASE}.${third}.${(n % POD_ADDRESSES) + 2}`;
    const pod: PodNet = {
      name,
      address,
      wrap: (argv) => ['ip', 'netns', 'exec', name, ...argv],
      cut: async () => void (await ip(['link', 'set', name, 'down'])),
      restore: async () => void (await ip(['link', 'set', name, 'up'])),
      async remove() {
        pods.delete(pod);
        await ip(['netns', 'del', name]).catch(() => undefined);
        // The veth goes with its namespace; deleted here too should a process still hold that.
        await ip(['link', 'del', name]).catch(() => undefined);
      },
    };
    pods.add(pod);
    try {
      await ip(['netns', 'add', name]);
      await ip(['link', 'add', name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      await ip(['link', 'set', name, 'master', bridge]);
      await ip(['link', 'set', name, 'up']);
      await ip(['-n', name, 'link', 'set', 'lo', 'up']);
      await ip(['-n', name, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    } catch (e) {
      await pod.remove();
      throw e;
    }
    return pod;
  }

  const removeNow = () => {
    for (const p of pods) {
      ipNow(['netns', 'del', p.name]);
      ipNow(['link', 'del', p.name]);
    }
    pods.clear();
    ipNow(['link', 'del', bridge]);
  };

  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    await ip(['addr', 'add', `${hostAddress}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    await (await addPod()).remove();
  } catch (e) {
    removeNow();
    throw e;
  }
  return {
    bridge,
    hostAddress,
    subnet: `${NET_BASE}.${third}.0/24`,
    addPod,
    // Synchronous (tens of ms at the end of a run): an async `ip` child would still be listed among
    // the process's open handles for a tick after it resolved.
    close: async () => removeNow(),
    closeNow: removeNow,
  };
}
