// Waits on a shared stop signal: however many run at once, the signal carries at most one abort
// listener, none once they end, and aborting still wakes every one of them.
import { getEventListeners } from 'node:events';
import { expect, test } from '@jest/globals';
import { settledOrAborted, sleep } from './sleep.js';

const abortListeners = (s: AbortSignal) => getEventListeners(s, 'abort').length;

test('50 concurrent sleeps on one signal hold one abort listener, and none after they end', async () => {
  const stop = new AbortController();
  const sleeps = Array.from({ length: 50 }, () => sleep(20, stop.signal));
  expect(abortListeners(stop.signal)).toBe(1);
  expect(await Promise.all(sleeps)).toEqual(Array(50).fill(true));
  expect(abortListeners(stop.signal)).toBe(0);
});

test('aborting wakes every sleep on the signal at once', async () => {
  const stop = new AbortController();
  const started = Date.now();
  const sleeps = Array.from({ length: 20 }, () => sleep(60_000, stop.signal));
  stop.abort();
  expect(await Promise.all(sleeps)).toEqual(Array(20).fill(false));
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(await sleep(60_000, stop.signal)).toBe(false);
});

test('a wait that ends one way or the other leaves no listener on the stop signal', async () => {
  const stop = new AbortController();
  for (let i = 0; i < 20; i++) await settledOrAborted(Promise.resolve(), stop.signal);
  await settledOrAborted(Promise.reject(new Error('ended badly')), stop.signal);
  expect(abortListeners(stop.signal)).toBe(0);
  const pending = settledOrAborted(new Promise(() => undefined), stop.signal);
  expect(abortListeners(stop.signal)).toBe(1);
  stop.abort();
  await pending;
  expect(abortListeners(stop.signal)).toBe(0);
});
