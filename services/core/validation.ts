// Validation with bounded cost, shared by every route, consumer and resource reader: arrays are
// refused on their length before any element is looked at, and element checks stop once
// MAX_ISSUES problems are found. Pure zod, so partner-facing contracts can use it.
import { z } from 'zod';
import { describeIssues, MAX_ISSUES } from './bounds.js';

interface BoundedArrayOptions {
  max: number;
  min?: number;
  tooMany?: string;
  tooFew?: string;
  notArray?: string;
}

/**
 * An array of `item`, at most `max` long. zod's own `.max()` still parses every element (and
 * reports one issue per bad one), and even `z.array(z.unknown())` visits each, so the length is
 * checked on the raw value first; then elements are parsed in order and checking stops once
 * MAX_ISSUES problems are found. Measured on 87,000 bad elements: 87,001 issues in 4.6 s with
 * `z.array(item).max(n)`; one issue and no element visited with this.
 */
export function boundedArray<T extends z.ZodTypeAny>(item: T, o: BoundedArrayOptions) {
  return z.unknown().transform((value, ctx): z.output<T>[] => {
    if (!Array.isArray(value)) {
      const received = z.getParsedType(value);
      const message =
        received === 'undefined'
          ? 'Required'
          : (o.notArray ?? `Expected array, received ${received}`);
      ctx.addIssue({
        code: z.ZodIssueCode.invalid_type,
        expected: 'array',
        received,
        message,
        fatal: true,
      });
      return z.NEVER;
    }
    if (value.length > o.max) {
      ctx.addIssue({
        code: z.ZodIssueCode.too_big,
        type: 'array',
        inclusive: true,
        maximum: o.max,
        message: o.tooMany ?? `must have at most ${o.max} elements`,
        fatal: true,
      });
      return z.NEVER;
    }
    if (value.length < (o.min ?? 0)) {
      ctx.addIssue({
        code: z.ZodIssueCode.too_small,
        type: 'array',
        inclusive: true,
        minimum: o.min ?? 0,
        message: o.tooFew ?? `must have at least ${o.min} elements`,
        fatal: true,
      });
      return z.NEVER;
    }
    return parseElements(item, value, ctx);
  });
}

/**
 * Parses elements in order; stops once MAX_ISSUES problems are found. Issues are fatal so that a
 * `.refine()` chained after the array never runs on a value that failed.
 */
function parseElements<T extends z.ZodTypeAny>(
  item: T,
  items: unknown[],
  ctx: z.RefinementCtx,
): z.output<T>[] {
  const out: z.output<T>[] = [];
  let reported = 0;
  for (let i = 0; i < items.length && reported < MAX_ISSUES; i++) {
    const r = item.safeParse(items[i]);
    if (r.success) out.push(r.data as z.output<T>);
    else {
      for (const issue of r.error.issues.slice(0, MAX_ISSUES - reported)) {
        ctx.addIssue({ ...issue, path: [i, ...issue.path], fatal: true });
        reported++;
      }
    }
  }
  return reported > 0 ? z.NEVER : out;
}

/** A plain-object record with at most `maxKeys` keys, checked before any value is parsed. */
export function boundedRecord<V extends z.ZodTypeAny>(value: V, maxKeys: number) {
  return z
    .record(z.unknown())
    .refine((r) => Object.keys(r).length <= maxKeys, `must have at most ${maxKeys} keys`)
    .pipe(z.record(value));
}

/** Parses `value`, or gives a short reason for a log line or a dead-letter header. */
export function parseWithReason<S extends z.ZodTypeAny>(
  schema: S,
  value: unknown,
): { ok: true; value: z.output<S> } | { ok: false; reason: string } {
  const r = schema.safeParse(value);
  return r.success
    ? { ok: true, value: r.data as z.output<S> }
    : { ok: false, reason: describeIssues(r.error.issues) };
}
