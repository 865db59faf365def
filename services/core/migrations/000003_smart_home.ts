// Smart home: partners, tenants' subscriptions to a partner's service, and the
// connect/disconnect requests that the MQ bridge drives to a final state.
import type { Migration } from './index.js';

export const smartHome: Migration = {
  id: 3,
  name: 'smart_home',
  sql: `
create table smart_home_partners (
  id bigserial primary key,
  name text not null unique,
  services text[] not null,                  -- 'intercom', 'barrier'
  command_queue text not null unique,        -- the partner's queue on the commands exchange
  oauth_client_id text not null unique,      -- its client at the authorization server
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- One row per tenant and service: what the app shows.
create table smart_home_subscriptions (
  id bigserial primary key,
  tenant_id text not null,
  service text not null check (service in ('intercom', 'barrier')),
  partner_id bigint not null references smart_home_partners (id),
  partner_ref uuid not null unique,          -- the only tenant reference partners ever see
  state text not null check (state in ('connecting', 'connected', 'disconnecting', 'disconnected', 'failed')),
  last_operation text not null check (last_operation in ('connect', 'disconnect')),
  last_error text,
  state_changed_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, service)
);

-- A request goes ready_for_request -> requested (when sent) -> complete, or failed. The engine's
-- columns (status, attempts, next_attempt_at, lease) drive re-sending while no reply has come.
create table smart_home_requests (
  id bigserial primary key,
  request_uuid uuid not null unique,         -- the correlation id of every message about it
  subscription_id bigint not null references smart_home_subscriptions (id) on delete cascade,
  tenant_id text not null,
  kind text not null check (kind in ('connect', 'disconnect')),
  state text not null default 'ready_for_request'
    check (state in ('ready_for_request', 'requested', 'complete', 'failed')),
  requested_at timestamptz,                  -- when the command was last sent
  completed_at timestamptz,
  idempotency_key text,
  personal_data bytea,                       -- AES-256-GCM, connect only, erased after disconnection
  biometrics_consent boolean not null default false,
  reply_reason text,
  status smallint not null default 0,        -- 0 new, 1 in progress, 2 done, 3 error
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, idempotency_key)
);
create index smart_home_requests_due on smart_home_requests (next_attempt_at, id) where status in (0, 1);
create index smart_home_requests_failed on smart_home_requests (id) where status = 3;
-- At most one request in flight per subscription.
create unique index smart_home_requests_open on smart_home_requests (subscription_id)
  where state in ('ready_for_request', 'requested');
create trigger smart_home_requests_notify after insert on smart_home_requests
  for each statement execute function hub_notify_work();
`,
};
