// Input validation for the kitchen routes: a zod failure becomes a 4xx with a stable code and the
// fields to fix (at most twenty); nothing that looks like a card number is ever accepted.
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ApiError } from '../../core/http.js';
import { parseOrThrow as parseWith } from '../../core/validation-errors.js';
import { findCardNumber } from '../../contracts/card-number.js';

/** 422 with at most MAX_ISSUES short issues (core/validation): an answer stays small whatever the body. */
export function parseOrThrow<S extends z.ZodTypeAny>(
  schema: S,
  value: unknown,
  code: string,
): z.output<S> {
  return parseWith(schema, value, {
    code,
    message: 'The request does not have the expected shape; see details for the fields to fix.',
  });
}

/** preValidation hook: refuses a body carrying anything that passes for a card number. */
export async function refuseCardNumbers(req: FastifyRequest): Promise<void> {
  const at = findCardNumber(req.body);
  if (at) {
    throw new ApiError(
      422,
      'card_number_rejected',
      'The request contains what looks like a card number. Card data goes only to the payment gateway; send its card token instead.',
      { path: at },
    );
  }
}
