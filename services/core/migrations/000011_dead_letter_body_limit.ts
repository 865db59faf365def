// Dead letters larger than DEAD_LETTER_MAX_BODY_BYTES keep only the beginning of their body: the
// row says so, and such a dead letter is never replayed.
import type { Migration } from './index.js';

export const deadLetterBodyLimit: Migration = {
  id: 11,
  name: 'dead_letter_body_limit',
  // A column with a constant default is added without rewriting the table.
  sql: `
-- true: body holds only the first DEAD_LETTER_MAX_BODY_BYTES of the message; body_bytes is its size as published.
alter table dead_letters add column body_truncated boolean not null default false;
`,
};
