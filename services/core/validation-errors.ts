// A zod failure as an HTTP answer: an ApiError whose details list at most MAX_ISSUES short issues
// and whose message says how many problems were found when not all are listed.
import type { z } from 'zod';
import { formatIssues } from './bounds.js';
import { ApiError } from './http.js';

interface ParseFailure {
  status?: number;
  code: string;
  message: string;
}

/** Parses `value` with `schema`, or throws an ApiError (422 unless told) with bounded details. */
export function parseOrThrow<S extends z.ZodTypeAny>(
  schema: S,
  value: unknown,
  f: ParseFailure,
): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data as z.output<S>;
  throw validationError(r.error, f);
}

/** The ApiError for a zod failure: at most MAX_ISSUES issues, and the message says when more were found. */
export function validationError(error: z.ZodError, f: ParseFailure): ApiError {
  const issues = formatIssues(error.issues);
  const more =
    error.issues.length > issues.length
      ? ` (${issues.length} of ${error.issues.length} problems listed)`
      : '';
  return new ApiError(f.status ?? 422, f.code, `${f.message}${more}`, issues);
}
