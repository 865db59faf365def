// Input validation for the kitchen routes: a zod failure becomes a 4xx with a stable code and the
// fields to fix; nothing that looks like a card number is ever accepted.
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ApiError } from '../../core/http.js';
import { findCardNumber } from '../../kitchen/card-number.js';

export function parseOrThrow<S extends z.ZodTypeAny>(schema: S, value: unknown, code: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ApiError(422, code, 'The request does not have the expected shape; see details for the fields to fix.',
    r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
}

/** preValidation hook: refuses a body carrying anything that passes for a card number. */
export async function refuseCardNumbers(req: FastifyRequest): Promise<void> {
  const at = findCardNumber(req.body);
  if (at)
    throw new ApiError(422, 'card_number_rejected',
      'The request contains what looks like a card number. Card data goes only to the payment gateway; send its card token instead.',
      { path: at });
}
