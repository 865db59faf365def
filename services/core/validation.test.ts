// Unit tests for bounded validation: arrays are refused on length before any element is parsed,
// element checks stop after a few problems, and every report of problems stays short.
import { describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import {
  boundDetails,
  describeIssues,
  formatIssues,
  MAX_DETAILS_CHARS,
  MAX_ISSUE_TEXT,
  MAX_ISSUES,
  MAX_REASON_TEXT,
  nestedDeeperThan,
  problemLines,
} from './bounds.js';
import { boundedArray, boundedRecord, parseWithReason } from './validation.js';
import { ApiError } from './http.js';
import { parseOrThrow } from './validation-errors.js';

/** A schema that counts how many values it was asked to parse. */
function counting() {
  const seen = { count: 0 };
  const schema = z.custom<number>((v) => {
    seen.count++;
    return typeof v === 'number';
  }, 'must be a number');
  return { seen, schema };
}

describe('boundedArray', () => {
  test('an array over the limit is refused with one issue and no element is parsed', () => {
    const { seen, schema } = counting();
    const r = boundedArray(schema, { max: 10, tooMany: 'too many' }).safeParse(
      Array.from({ length: 100_000 }, () => 'x'),
    );
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([
      expect.objectContaining({ code: 'too_big', message: 'too many', path: [] }),
    ]);
    expect(seen.count).toBe(0);
  });

  test('element checks stop once MAX_ISSUES problems are found, with paths to the elements', () => {
    const { seen, schema } = counting();
    const r = boundedArray(schema, { max: 10_000 }).safeParse(
      Array.from({ length: 9_999 }, () => 'x'),
    );
    expect(r.error?.issues).toHaveLength(MAX_ISSUES);
    expect(r.error?.issues[3]?.path).toEqual([3]);
    expect(seen.count).toBe(MAX_ISSUES);
  });

  test('a valid array parses to its elements, transformed; min, not-an-array and a missing value are refused', () => {
    const ids = boundedArray(z.string().transform(Number), {
      min: 1,
      max: 3,
      tooFew: 'at least one',
    });
    expect(ids.parse(['1', '2'])).toEqual([1, 2]);
    expect(ids.safeParse([]).error?.issues[0]?.message).toBe('at least one');
    expect(
      boundedArray(z.number(), { max: 3, notArray: 'must be a list' }).safeParse('x').error
        ?.issues[0]?.message,
    ).toBe('must be a list');
    expect(
      z.object({ a: boundedArray(z.number(), { max: 3 }) }).safeParse({}).error?.issues[0],
    ).toMatchObject({ path: ['a'], message: 'Required' });
    expect(z.object({ a: boundedArray(z.number(), { max: 3 }).default([]) }).parse({})).toEqual({
      a: [],
    });
  });

  test('a refine chained after a failed array does not run on the failed value', () => {
    const unique = boundedArray(z.string(), { max: 2 }).refine(
      (a) => new Set(a).size === a.length,
      'must not repeat',
    );
    expect(unique.safeParse(['a', 'b', 'c']).error?.issues.map((i) => i.code)).toEqual(['too_big']);
    expect(unique.safeParse([1]).error?.issues.map((i) => i.code)).toEqual(['invalid_type']);
    expect(unique.safeParse(['a', 'a']).error?.issues.map((i) => i.message)).toEqual([
      'must not repeat',
    ]);
  });

  test('nested elements report their full path', () => {
    const r = z
      .object({ items: boundedArray(z.object({ q: z.number() }), { max: 5 }) })
      .safeParse({ items: [{ q: 1 }, { q: 'x' }] });
    expect(r.error?.issues[0]?.path).toEqual(['items', 1, 'q']);
  });
});

describe('boundedRecord', () => {
  test('a record over the key limit is refused before its values are parsed', () => {
    const { seen, schema } = counting();
    const r = boundedRecord(schema, 5).safeParse(
      Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${i}`, 'x'])),
    );
    expect(r.error?.issues).toHaveLength(1);
    expect(seen.count).toBe(0);
    expect(boundedRecord(z.string(), 5).parse({ a: 'b' })).toEqual({ a: 'b' });
  });
});

describe('reports of problems', () => {
  const strict = z.object({ a: z.string() }).strict();
  const manyKeys = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`key${i}`, 1]));

  test('formatIssues lists at most MAX_ISSUES issues and clips messages that quote the input', () => {
    const issues = strict.safeParse({ a: 'x', ...manyKeys }).error?.issues ?? [];
    const formatted = formatIssues(issues);
    expect(formatted).toHaveLength(1);
    expect(formatted[0]?.message.length).toBeLessThanOrEqual(MAX_ISSUE_TEXT);
    const many =
      z.array(z.string()).safeParse(Array.from({ length: 500 }, () => 1)).error?.issues ?? [];
    expect(formatIssues(many)).toHaveLength(MAX_ISSUES);
  });

  test('describeIssues and problemLines stay short and count what they leave out', () => {
    const many =
      z.array(z.enum(['a'])).safeParse(Array.from({ length: 500 }, () => 'x'.repeat(10_000))).error
        ?.issues ?? [];
    const reason = describeIssues(many);
    expect(reason.length).toBeLessThanOrEqual(MAX_REASON_TEXT);
    expect(reason).toMatch(/\+497 more/);
    const lines = problemLines(many);
    expect(lines).toHaveLength(MAX_ISSUES + 1);
    expect(lines.at(-1)).toBe('(480 more problems not listed)');
    expect(parseWithReason(z.number(), 'x')).toEqual({
      ok: false,
      reason: '(root): Expected number, received string',
    });
  });

  test('boundDetails keeps small details, cuts arrays, and replaces huge or unserialisable ones by a note', () => {
    expect(boundDetails({ path: '$.note' })).toEqual({ path: '$.note' });
    expect(boundDetails(Array.from({ length: 100 }, (_, i) => i))).toHaveLength(MAX_ISSUES);
    expect(boundDetails({ blob: 'x'.repeat(MAX_DETAILS_CHARS) })).toMatchObject({
      truncated: true,
    });
    expect(boundDetails({ n: 1n })).toMatchObject({ truncated: true });
    expect(boundDetails(undefined)).toBeUndefined();
  });

  test('parseOrThrow throws a 422 ApiError with bounded details and says how many problems there were', () => {
    let thrown: unknown;
    try {
      parseOrThrow(
        z.array(z.string()),
        Array.from({ length: 100 }, () => 1),
        { code: 'invalid_body', message: 'Bad body.' },
      );
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ApiError);
    const e = thrown as ApiError;
    expect({ status: e.statusCode, code: e.code, message: e.message }).toEqual({
      status: 422,
      code: 'invalid_body',
      message: 'Bad body. (20 of 100 problems listed)',
    });
    expect(e.details).toHaveLength(MAX_ISSUES);
  });
});

describe('nestedDeeperThan', () => {
  const nest = (n: number): unknown => JSON.parse(`${'['.repeat(n)}${']'.repeat(n)}`);
  test('measures nesting of arrays and objects, whatever the depth, without overflowing the stack', () => {
    expect(nestedDeeperThan(nest(64))).toBe(false);
    expect(nestedDeeperThan(nest(65))).toBe(true);
    expect(nestedDeeperThan(nest(200_000))).toBe(true);
    expect(nestedDeeperThan(JSON.parse(`${'{"a":'.repeat(65)}1${'}'.repeat(65)}`))).toBe(true);
    expect(nestedDeeperThan('x'.repeat(10))).toBe(false);
    expect(nestedDeeperThan(Array.from({ length: 100_000 }, () => ({ a: [1] })))).toBe(false);
  });
});
