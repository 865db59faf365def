// A service run as the deployment runs it: the built entry point (`dist/…/main.js`) in a child
// process, its output kept, its port read from its own "listening" log line, its RSS sampled.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../support/context.js';
import { track } from '../support/leaks.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const st = statSync(file);
    if (st.isDirectory()) newest = Math.max(newest, newestSource(file));
    else if (/\.(ts|lua|proto|xsd|html)$/.test(name) && !name.endsWith('.test.ts')) {
      newest = Math.max(newest, st.mtimeMs);
    }
  }
  return newest;
}

/** Runs `npm run build` when an entry is missing or older than the newest source file. */
export function ensureBuilt(entries: readonly string[]): void {
  const built = entries.map((e) => path.join(ROOT, e));
  const newest = Math.max(
    newestSource(path.join(ROOT, 'services')),
    newestSource(path.join(ROOT, 'proto')),
  );
  if (built.every((f) => existsSync(f) && statSync(f).mtimeMs >= newest)) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
}

export interface Child {
  name: string;
  entry: string;
  child: ChildProcess;
  /** Every line it wrote to stdout and stderr so far. */
  output(): string;
  exitCode(): number | string | undefined;
  exited: Promise<number | string>;
  /** Resident set size in bytes (VmRSS of /proc/<pid>/status); 0 once the process is gone. */
  rss(): number;
  stop(): Promise<number | string>;
}

export function spawnBuilt(
  name: string,
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
): Child {
  const child = spawn(process.execPath, [path.join(ROOT, entry), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let code: number | string | undefined;
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const untrack = track(`child process ${name}`);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (c, signal) => {
      code = c ?? signal ?? -1;
      untrack();
      resolve(code);
    }),
  );
  return {
    name,
    entry,
    child,
    exited,
    output: () => out,
    exitCode: () => code,
    rss: () => readRss(child.pid),
    async stop() {
      if (code === undefined) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export function readRss(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The port of the child's first `listening at http://…:<port>` log line (fastify's own). */
export async function listeningPort(c: Child, timeoutMs = 20_000): Promise<number> {
  const port = await waitFor(
    () => {
      if (c.exitCode() !== undefined) {
        throw new Error(`${c.name} exited with ${String(c.exitCode())}:\n${c.output()}`);
      }
      return (
        /listening at https?:\/\/[^\s"]*:(\d+)/i.exec(c.output())?.[1] ??
        /"address":"https?:\/\/[^"]*:(\d+)"/.exec(c.output())?.[1]
      );
    },
    timeoutMs,
    `${c.name} to listen`,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${c.output().slice(-4000)}`);
  });
  return Number(port);
}
