// Group commit without a database: which rows share a write, what each caller is answered when a
// batch fails, and the bound on waiting rows.
import { expect, test } from '@jest/globals';
import { GroupCommit, GroupCommitFullError, type BatchWriter } from './group-commit.js';

/** A writer whose calls wait until released; it answers each row doubled, and fails on a negative row. */
function heldWriter() {
  const calls: number[][] = [];
  const releases: (() => void)[] = [];
  const write: BatchWriter<number, number> = async (rows) => {
    calls.push([...rows]);
    await new Promise<void>((r) => releases.push(r));
    if (rows.some((r) => r < 0)) throw new Error('check constraint violated');
    return rows.map((r) => r * 2);
  };
  const releaseAll = async () => {
    while (releases.length > 0) releases.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { calls, write, releaseAll };
}

async function settleAll(w: ReturnType<typeof heldWriter>, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await w.releaseAll();
}

test("rows submitted in one turn share one write, and each caller gets its own row's result", async () => {
  const w = heldWriter();
  const gc = new GroupCommit(w.write, { maxBatch: 100, maxQueued: 100, maxInFlight: 1 });
  const answers = Promise.all([1, 2, 3, 4].map((r) => gc.submit(r)));
  let finished = false;
  void answers.then(() => (finished = true));
  await settleAll(w, () => finished);
  expect(await answers).toEqual([2, 4, 6, 8]);
  expect(w.calls).toEqual([[1, 2, 3, 4]]);
});

test('rows arriving while a write runs wait for it and then go out together, up to maxBatch', async () => {
  const w = heldWriter();
  const gc = new GroupCommit(w.write, { maxBatch: 3, maxQueued: 100, maxInFlight: 1 });
  const first = gc.submit(1);
  await new Promise((r) => setImmediate(r));
  expect(w.calls).toEqual([[1]]);
  const later = [2, 3, 4, 5].map((r) => gc.submit(r));
  await new Promise((r) => setImmediate(r));
  expect(w.calls).toHaveLength(1);
  let finished = false;
  const all = Promise.all([first, ...later]).then((x) => ((finished = true), x));
  await settleAll(w, () => finished);
  expect(await all).toEqual([2, 4, 6, 8, 10]);
  expect(w.calls).toEqual([[1], [2, 3, 4], [5]]);
});

test("a batch that fails is written again row by row, and only the bad row's caller gets the error", async () => {
  const w = heldWriter();
  const gc = new GroupCommit(w.write, { maxBatch: 100, maxQueued: 100, maxInFlight: 1 });
  const answers = [1, -1, 3].map((r) =>
    gc.submit(r).then(
      (v) => ({ v }),
      (e: Error) => ({ e: e.message }),
    ),
  );
  let finished = false;
  const all = Promise.all(answers).then((x) => ((finished = true), x));
  await settleAll(w, () => finished);
  expect(await all).toEqual([{ v: 2 }, { e: 'check constraint violated' }, { v: 6 }]);
  expect(w.calls).toEqual([[1, -1, 3], [1], [-1], [3]]);
});

test('an error that fails every row alike (database unreachable) is given to every caller without retries', async () => {
  const calls: number[][] = [];
  const gc = new GroupCommit<number, number>(
    async (rows) => {
      calls.push([...rows]);
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    },
    { maxBatch: 100, maxQueued: 100, maxInFlight: 1 },
    { isBatchWide: (e) => e.message.includes('ECONNREFUSED') },
  );
  const answers = await Promise.allSettled([1, 2, 3].map((r) => gc.submit(r)));
  expect(answers.map((a) => a.status)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(calls).toEqual([[1, 2, 3]]);
});

test('past maxQueued waiting rows a submit is refused at once, and the queue drains afterwards', async () => {
  const w = heldWriter();
  const gc = new GroupCommit(w.write, { maxBatch: 100, maxQueued: 2, maxInFlight: 1 });
  const inFlight = gc.submit(1);
  await new Promise((r) => setImmediate(r));
  const waiting = [gc.submit(2), gc.submit(3)];
  await expect(gc.submit(4)).rejects.toBeInstanceOf(GroupCommitFullError);
  let finished = false;
  const all = Promise.all([inFlight, ...waiting]).then((x) => ((finished = true), x));
  await settleAll(w, () => finished);
  expect(await all).toEqual([2, 4, 6]);
  expect(gc.queued).toBe(0);
});

test('a writer that answers the wrong number of results fails the rows instead of mis-answering them', async () => {
  const gc = new GroupCommit<number, number>(async (rows) => rows.slice(1), {
    maxBatch: 100,
    maxQueued: 100,
    maxInFlight: 1,
  });
  const answers = await Promise.allSettled([gc.submit(1), gc.submit(2)]);
  expect(answers.every((a) => a.status === 'rejected')).toBe(true);
});
