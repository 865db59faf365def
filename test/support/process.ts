// Runs a service entry point as a real child process (through tsx), for crash and shutdown tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from '@jest/globals';
import { waitFor } from './context.js';
import { track } from './leaks.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ServiceProcess {
  entry: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

export function startServiceProcess(
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry), ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const untrack = track(`child process ${entry}`);
  // 'close', not 'exit': by then the child's output has been read to its end.
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => {
      untrack();
      resolve(code ?? signal ?? -1);
    }),
  );
  return { entry, child, output: () => out, exited };
}

/** Waits for the process to exit and expects 0; otherwise its output is printed, to show why. */
export async function expectCleanExit(p: ServiceProcess): Promise<void> {
  const code = await p.exited;
  if (code !== 0) console.log(`${p.entry} exited with ${String(code)}:\n${p.output()}`);
  expect(code).toBe(0);
}

/**
 * The port the service's HTTP server listens on, from fastify's start line. Start-up of a child
 * run through tsx takes seconds on a loaded 2-core machine: the wait is generous, and a timeout
 * says what the process printed, so that a slow start and a failed one are told apart.
 */
export async function listeningPort(p: ServiceProcess, timeoutMs = 45_000): Promise<number> {
  try {
    return Number(
      await waitFor(
        () => /Server listening at http:\/\/[^\s"]*:(\d+)/.exec(p.output())?.[1],
        timeoutMs,
        `${p.entry} to listen`,
      ),
    );
  } catch (thrown) {
    throw new Error(`${String(thrown)}; it printed:\n${p.output().slice(-4_000)}`, {
      cause: thrown,
    });
  }
}
