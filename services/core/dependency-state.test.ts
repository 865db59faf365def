// Unit tests for the state-change logger: one line when a dependency goes, a reminder while it
// stays down, one line when it is back, whatever the number of failed calls.
import { expect, test } from '@jest/globals';
import { createLogger } from './logger.js';
import { DependencyState } from './dependency-state.js';

function harness() {
  const lines: Array<{ level: number; msg: string; downForS?: number; failures?: number }> = [];
  const logger = createLogger(
    { level: 'debug', name: 't' },
    { write: (l: string) => void lines.push(JSON.parse(l)) },
  );
  let now = 1_000_000;
  const state = new DependencyState(logger, {
    name: 'redis',
    effect: 'holding calls',
    reminderMs: 60_000,
    now: () => now,
  });
  return { lines, state, advance: (ms: number) => (now += ms) };
}

test('a thousand failures in a minute log one warning; a reminder after a minute; one line when back', () => {
  const { lines, state, advance } = harness();
  for (let i = 0; i < 1_000; i++) {
    state.down('connect ECONNREFUSED');
    advance(50);
  }
  expect(lines.map((l) => l.msg)).toEqual(['redis unavailable; holding calls']);
  advance(10_000);
  state.down('connect ECONNREFUSED');
  expect(lines.map((l) => l.msg)).toEqual([
    'redis unavailable; holding calls',
    'redis still unavailable',
  ]);
  expect(lines[1]).toMatchObject({ downForS: 60, failures: 1_001 });
  state.up();
  state.up();
  expect(lines.map((l) => l.msg)).toEqual([
    'redis unavailable; holding calls',
    'redis still unavailable',
    'redis available again',
  ]);
  expect(state.isDown).toBe(false);
});

test('a dependency that never went down logs nothing when calls succeed', () => {
  const { lines, state } = harness();
  state.up();
  expect(lines).toEqual([]);
});
