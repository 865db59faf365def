// ALLIO integration: settings, inbound webhooks, sync tasks (the columns ALLIO's
// integration defines, plus what a reliable queue needs), and the CRM tables the sync writes.
import type { Migration } from './index.js';

export const allio: Migration = {
  id: 2,
  name: 'allio',
  sql: `
create table allio_integrations (
  id bigserial primary key,
  name text not null unique,
  integration_uuid uuid not null unique,
  webhook_key text not null unique,
  api_base_url text not null,
  api_token text,
  api_token_secret_name text,
  api_token_secret_key text,
  deletion_control boolean not null default false,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint allio_integrations_token check (api_token is not null or api_token_secret_name is not null)
);

create table allio_webhook (
  id bigserial primary key,
  integration_uuid uuid not null,
  command text not null,
  external_ids_array text not null,         -- JSON array as text, e.g. "[111,222]"
  created_at timestamptz not null default now(),
  integration_id bigint not null references allio_integrations (id) on delete cascade,
  request_id text,
  status smallint not null default 0,       -- 0 new, 1 in progress, 2 processed, 3 error
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  skip_reason text,
  updated_at timestamptz not null default now(),
  processed_at timestamptz
);
create index allio_webhook_due on allio_webhook (next_attempt_at, id) where status in (0, 1);
create trigger allio_webhook_notify after insert on allio_webhook
  for each statement execute function hub_notify_work();

create table allio_tasks (
  id bigserial primary key,
  external_ids text not null,               -- JSON array as text
  status smallint not null default 0,       -- 0 new, 1 in progress, 2 done, 3 error
  created_at timestamptz not null default now(),
  entity text not null check (entity in ('reserve', 'dealcard')),
  integration_id bigint not null references allio_integrations (id) on delete cascade,
  webhook_id bigint references allio_webhook (id) on delete set null,
  command text not null,
  op text not null check (op in ('upsert', 'delete')),
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  skip_reason text,
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
create index allio_tasks_due on allio_tasks (op, next_attempt_at, id) where status in (0, 1);
create index allio_tasks_group on allio_tasks (integration_id, entity, op) where status in (0, 1);
create index allio_tasks_failed on allio_tasks (integration_id) where status = 3;
create trigger allio_tasks_notify after insert on allio_tasks
  for each statement execute function hub_notify_work();

create table crm_contacts (
  id bigserial primary key,
  integration_id bigint not null references allio_integrations (id) on delete cascade,
  external_id text not null,
  phone text,                                -- normalised E.164, null when ALLIO sent garbage
  phone_raw text,                            -- exactly what ALLIO sent, e.g. '#ERROR!'
  custom_fields jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (integration_id, external_id)
);

create table crm_reservations (
  id bigserial primary key,
  integration_id bigint not null references allio_integrations (id) on delete cascade,
  external_id text not null,
  contact_id bigint references crm_contacts (id) on delete set null,
  created_at timestamptz,                    -- ALLIO 'till'
  custom_fields jsonb not null default '{}',
  synced_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (integration_id, external_id)
);

create table crm_deals (
  id bigserial primary key,
  integration_id bigint not null references allio_integrations (id) on delete cascade,
  external_id text not null,
  contact_id bigint references crm_contacts (id) on delete set null,
  created_at timestamptz,                    -- ALLIO 'till'
  custom_fields jsonb not null default '{}',
  synced_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (integration_id, external_id)
);
`,
};
