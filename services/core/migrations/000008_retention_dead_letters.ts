// Retention and dead letters: the indexes the daily purge of finished work rows walks (oldest
// finished first, so a batch never scans rows it keeps), and the table where dead-lettered RabbitMQ
// messages are kept for operators to list, inspect, replay and purge.
import type { Migration } from './index.js';

/** Finished rows (done or failed) by the time of their last change: what the purge deletes by age. */
const finished = (table: string) => `
create index ${table}_finished on ${table} (updated_at) where status in (2, 3);`;

export const retentionDeadLetters: Migration = {
  id: 8,
  name: 'retention_dead_letters',
  sql: `
${[
  'allio_webhook',
  'allio_tasks',
  'smart_home_requests',
  'kitchen_warehouse_events',
  'kitchen_outbox',
  'periodic_runs',
]
  .map(finished)
  .join('')}
-- A webhook is kept while a task it planned is open (its request id is the task's correlation id),
-- and deleting one sets allio_tasks.webhook_id to null: both look tasks up by webhook.
create index allio_tasks_webhook on allio_tasks (webhook_id) where webhook_id is not null;
-- A subscription's latest request is what the app shows and what a replay re-sends: only requests
-- with a newer one for the same subscription are purged.
create index smart_home_requests_subscription on smart_home_requests (subscription_id, id);

-- Dead-lettered messages moved out of RabbitMQ by the hub (services/core/dead-letters/). status is
-- the replay's work state: null while nobody asked for a replay, then 0 asked, 1 being published,
-- 2 replayed, 3 the replay failed.
create table dead_letters (
  id bigserial primary key,
  fingerprint text not null unique,          -- sha256 of queue, properties and body: a redelivery is stored once
  queue text not null,                       -- the dead-letter queue it was taken from
  source_queue text,                         -- the queue it died in
  exchange text,                             -- where a replay publishes it (null: straight to source_queue)
  routing_key text not null,
  reason text not null,                      -- the hub's x-hub-reason, else the broker's (rejected, expired, delivery_limit, maxlen)
  properties jsonb not null,                 -- AMQP properties, headers (x-death) included
  body bytea not null,
  body_encrypted boolean not null default false,  -- sealed with DATA_ENCRYPTION_KEYS (it may hold personal data)
  body_bytes int not null,
  dead_at timestamptz,                       -- when the broker dead-lettered it (x-death), if it said
  replayed_at timestamptz,
  status smallint,
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index dead_letters_queue on dead_letters (queue, id);
create index dead_letters_due on dead_letters (next_attempt_at, id) where status in (0, 1);
create index dead_letters_finished on dead_letters (updated_at) where status is null or status in (2, 3);
`,
};
