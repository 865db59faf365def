// Unit tests for the pure webhook → task planning of ALLIO commands.
import { describe, expect, test } from '@jest/globals';
import {
  batchIds,
  MAX_IDS_PER_REQUEST,
  parseIds,
  planTasks,
  type Entity,
  type Op,
  type TaskDraft,
} from './commands.js';

function tasksOf(command: string, ids: string): TaskDraft[] {
  const plan = planTasks(command, ids);
  if (!('tasks' in plan)) throw new Error(`expected tasks, got skip: ${plan.skip}`);
  return plan.tasks;
}

const range = (from: number, count: number): number[] =>
  Array.from({ length: count }, (_, i) => from + i);

describe('planTasks', () => {
  const cases: [string, Entity, Op][] = [
    ['RESERVE_ADD', 'reserve', 'upsert'],
    ['RESERVE_MOD', 'reserve', 'upsert'],
    ['RESERVE_DEL', 'reserve', 'delete'],
    ['DEALCARD_ADD', 'dealcard', 'upsert'],
    ['DEALCARD_MOD', 'dealcard', 'upsert'],
    ['DEALCARD_DEL', 'dealcard', 'delete'],
  ];
  test.each(cases)(
    '%s becomes one %s/%s task carrying the command and the ids',
    (command, entity, op) => {
      expect(tasksOf(command, '[1,2,3]')).toEqual([
        { entity, op, command, external_ids: '[1,2,3]' },
      ]);
    },
  );

  test('an unknown command such as SPACE_CHANGED is skipped with a reason naming it', () => {
    const plan = planTasks('SPACE_CHANGED', '[1,2]');
    expect(plan).toEqual({ skip: expect.stringContaining('SPACE_CHANGED') });
  });

  test('an unknown command is skipped even when its ids are not valid JSON', () => {
    expect(planTasks('SPACE_CHANGED', 'not json')).toHaveProperty('skip');
  });

  test('a command named like an Object.prototype member (toString, constructor, __proto__) is skipped as unknown', () => {
    // Regression: with COMMANDS as a plain object literal, COMMANDS['toString'] was a function and
    // `command in COMMANDS` was true, so the plan yielded a task without entity or op.
    for (const command of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      expect(planTasks(command, '[1]')).toHaveProperty('skip');
    }
  });

  test('an empty id array is skipped because the webhook carries no ids', () => {
    expect(planTasks('RESERVE_ADD', '[]')).toEqual({ skip: 'webhook carries no ids' });
  });

  test('an id array with only invalid ids (0, negative, fractional, text) is skipped as carrying no ids', () => {
    expect(planTasks('RESERVE_ADD', '[0,-5,1.5,"abc",null,true]')).toHaveProperty('skip');
  });

  test('250 ids become 3 tasks of 100, 100 and 50 ids in their original order', () => {
    const ids = range(1, 250);
    const tasks = tasksOf('DEALCARD_MOD', JSON.stringify(ids));
    expect(tasks).toHaveLength(3);
    const chunks = tasks.map((t) => JSON.parse(t.external_ids) as number[]);
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(chunks.flat()).toEqual(ids);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(MAX_IDS_PER_REQUEST);
  });

  test('exactly 100 ids fit in a single task', () => {
    expect(tasksOf('RESERVE_ADD', JSON.stringify(range(1, 100)))).toHaveLength(1);
  });

  test('duplicate ids inside a webhook are dropped, keeping the first occurrence order', () => {
    expect(tasksOf('RESERVE_MOD', '[5,3,5,3,7]')).toEqual([
      { entity: 'reserve', op: 'upsert', command: 'RESERVE_MOD', external_ids: '[5,3,7]' },
    ]);
  });

  test('duplicates do not count towards the 100-id chunk size: 150 ids with 50 repeats give one task', () => {
    const ids = [...range(1, 100), ...range(1, 50)];
    expect(tasksOf('RESERVE_ADD', JSON.stringify(ids))).toHaveLength(1);
  });

  test('string ids such as "12" are accepted and stored as numbers', () => {
    expect(tasksOf('RESERVE_ADD', '["12", 13]')[0]?.external_ids).toBe('[12,13]');
  });

  test('invalid JSON throws', () => {
    expect(() => planTasks('RESERVE_ADD', '[1,2')).toThrow(SyntaxError);
  });
});

describe('parseIds', () => {
  test('keeps positive integer ids in first-seen order', () => {
    expect(parseIds('[3,1,2]')).toEqual([3, 1, 2]);
  });

  test('a digit string and the same number count as one id', () => {
    expect(parseIds('["12", 12, "12"]')).toEqual([12]);
  });

  test('drops zero, negatives, fractions, non-digit strings, nulls, booleans and objects', () => {
    expect(parseIds('[0, -1, 2.5, "-3", "4a", " 5", "", null, true, {}, [6], 7]')).toEqual([7]);
  });

  test('drops ids beyond Number.MAX_SAFE_INTEGER, whether numbers or strings', () => {
    expect(parseIds('[9007199254740993, "9007199254740993", 9007199254740991]')).toEqual([
      9007199254740991,
    ]);
  });

  test('a JSON value that is not an array throws', () => {
    expect(() => parseIds('{"ids":[1]}')).toThrow('not a JSON array');
    expect(() => parseIds('42')).toThrow('not a JSON array');
  });

  test('invalid JSON throws', () => {
    expect(() => parseIds('nope')).toThrow(SyntaxError);
  });
});

describe('batchIds', () => {
  test('ids repeated across tasks appear once, in first-seen order', () => {
    expect(
      batchIds([
        [1, 2, 3],
        [3, 4],
        [1, 5],
      ]),
    ).toEqual([[1, 2, 3, 4, 5]]);
  });

  test('250 distinct ids over several tasks are split into chunks of 100, 100 and 50', () => {
    const chunks = batchIds([range(1, 120), range(121, 130)]);
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(chunks.flat()).toEqual(range(1, 250));
  });

  test('dedupe happens before chunking: two tasks of the same 100 ids make one request', () => {
    expect(batchIds([range(1, 100), range(1, 100)])).toEqual([range(1, 100)]);
  });

  test('no tasks, or only empty tasks, give no chunks', () => {
    expect(batchIds([])).toEqual([]);
    expect(batchIds([[], []])).toEqual([]);
  });
});

describe('known commands', () => {
  test('the six synchronised commands are planned; others, and other spellings, are skipped', () => {
    for (const c of [
      'RESERVE_ADD',
      'RESERVE_MOD',
      'RESERVE_DEL',
      'DEALCARD_ADD',
      'DEALCARD_MOD',
      'DEALCARD_DEL',
    ]) {
      expect(planTasks(c, '[1]')).not.toHaveProperty('skip');
    }
    expect(planTasks('SPACE_CHANGED', '[1]')).toHaveProperty('skip');
    expect(planTasks('reserve_add', '[1]')).toHaveProperty('skip');
  });
});
