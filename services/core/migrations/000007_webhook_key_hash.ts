// ALLIO webhook keys are stored as their SHA-256 only: a leaked database dump or backup no longer
// hands out the URLs that let anyone post webhooks. Existing keys are hashed in place.
import type { Migration } from './index.js';

export const webhookKeyHash: Migration = {
  id: 7,
  name: 'webhook_key_hash',
  // A plain SHA-256 (no salt, no slow hash) is enough: keys are random, at least 16 characters
  // from 64 symbols (96 bits), so there is nothing to guess, and the hash must be usable as an
  // equality lookup. services/domains/allio/webhook-key.ts computes the same value (lower-case hex).
  sql: `
alter table allio_integrations add column webhook_key_hash text;
update allio_integrations set webhook_key_hash = encode(sha256(convert_to(webhook_key, 'UTF8')), 'hex');
alter table allio_integrations alter column webhook_key_hash set not null;
alter table allio_integrations add constraint allio_integrations_webhook_key_hash_key unique (webhook_key_hash);
alter table allio_integrations drop column webhook_key;
`,
};
