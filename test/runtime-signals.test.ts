// SIGTERM while a service is still starting (a rollout right after the pod came up): the process
// finishes starting, runs its shutdown steps and exits 0, instead of dying of the signal half-started.
import { expect, test } from '@jest/globals';
import { waitFor } from './support/context.js';
import { expectCleanExit, startServiceProcess } from './support/process.js';

test('a SIGTERM during start-up is held until start-up is over, then the shutdown runs and the exit is 0', async () => {
  const p = startServiceProcess('test/support/slow-start-service.ts', {});
  try {
    await waitFor(() => p.output().includes('"msg":"starting"'), 20_000, 'start-up to begin');
    p.child.kill('SIGTERM');
    await expectCleanExit(p);
    const out = p.output();
    expect(out).toContain('SIGTERM during start-up: stopping once start-up is over');
    expect(out.indexOf('"msg":"started"')).toBeLessThan(out.indexOf('shutdown step ran'));
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
}, 40_000);

test('a SIGTERM that arrives as start-up ends (still queued when the shutdown handler takes over) is acted on, not lost', async () => {
  const p = startServiceProcess('test/support/slow-start-service.ts', { START_BUSY_MS: '1500' });
  try {
    await waitFor(
      () => p.output().includes('"msg":"busy"'),
      20_000,
      'the last stretch of start-up',
    );
    p.child.kill('SIGTERM');
    const exited = await Promise.race([
      p.exited,
      new Promise((r) => setTimeout(() => r('still running 10 s after SIGTERM'), 10_000)),
    ]);
    if (exited !== 0) console.log(p.output());
    expect(exited).toBe(0);
    expect(p.output()).toContain('shutdown step ran');
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
}, 40_000);
