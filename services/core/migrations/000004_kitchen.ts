// Kitchen: menu with technology cards, orders and their payment, production, status
// outbox, warehouse stock fed by webhooks, the 1C export ledger, and API keys for machine clients.
import type { Migration } from './index.js';

/** The engine's bookkeeping columns (see engine/work-table.ts). */
const WORK = `
  status smallint not null default 0,        -- 0 new, 1 in progress, 2 done, 3 error
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz`;

const workIndexes = (table: string) => `
create index ${table}_due on ${table} (next_attempt_at, id) where status in (0, 1);
create index ${table}_failed on ${table} (id) where status = 3;
create trigger ${table}_notify after insert on ${table} for each statement execute function hub_notify_work();`;

export const kitchen: Migration = {
  id: 4,
  name: 'kitchen',
  sql: `
-- Machine clients (kitchen terminals, back office): the key's secret is stored only as SHA-256.
create table api_keys (
  id text primary key,
  name text not null,
  secret_sha256 text not null,
  roles text[] not null,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  last_used_at timestamptz
);

create table kitchen_dishes (
  id text primary key,
  name text not null,
  price_minor bigint not null check (price_minor >= 0),
  currency text not null,
  card jsonb not null,                        -- the parsed technology card
  card_xml text not null,                     -- as imported, schema-checked
  card_version int not null,
  active boolean not null default true,
  updated_at timestamptz not null default now()
);

create table kitchen_orders (
  id uuid primary key,
  tenant_id text not null,
  state text not null check (state in
    ('awaiting_payment', 'payment_pending', 'payment_declined', 'paid', 'in_production', 'produced', 'failed')),
  items jsonb not null,                       -- [{dishId, name, quantity, priceMinor}]
  total_minor bigint not null,
  currency text not null,
  idempotency_key text,
  reason text,                                -- why it was declined or failed
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  paid_at timestamptz,
  produced_at timestamptz,
  unique (tenant_id, idempotency_key)
);
create index kitchen_orders_tenant on kitchen_orders (tenant_id, created_at desc);
create index kitchen_orders_produced on kitchen_orders (produced_at) where produced_at is not null;

create table kitchen_payments (
  id bigserial primary key,
  order_id uuid not null references kitchen_orders (id),
  idempotency_key uuid not null unique,       -- sent to the gateway: a retry never charges twice
  card_token text,                            -- the gateway's token, erased once settled
  amount_minor bigint not null,
  currency text not null,
  outcome text check (outcome in ('approved', 'declined', 'failed')),
  gateway_payment_id text,
  decline_code text,
  settled_at timestamptz,${WORK}
);
-- One live payment per order; a declined one may be followed by another card.
create unique index kitchen_payments_live on kitchen_payments (order_id) where outcome is null or outcome = 'approved';
create index kitchen_payments_settled on kitchen_payments (settled_at) where outcome = 'approved';
${workIndexes('kitchen_payments')}

create table kitchen_production (
  id bigserial primary key,
  order_id uuid not null unique references kitchen_orders (id),
  phase text not null default 'submit' check (phase in ('submit', 'monitor')),
  robot_order_id text,
  robot_status text,
  deadline_at timestamptz,${WORK}
);
${workIndexes('kitchen_production')}

create table kitchen_write_offs (
  id bigserial primary key,
  order_id uuid not null references kitchen_orders (id),
  ingredient text not null,
  quantity numeric not null,
  unit text not null,
  written_off_at timestamptz not null default now(),
  unique (order_id, ingredient)
);
create index kitchen_write_offs_at on kitchen_write_offs (written_off_at);

create table kitchen_stock (
  ingredient text primary key,
  quantity numeric not null,
  reserved numeric not null default 0 check (reserved >= 0),  -- held by orders being paid or cooked
  unit text not null,
  expires_at timestamptz,
  source_at timestamptz not null,             -- the warehouse time of the last level applied
  updated_at timestamptz not null default now()
);

-- What each order holds of the stock from payment until it is produced (consumed), declined or
-- failed (released); the sum per ingredient is kitchen_stock.reserved.
create table kitchen_stock_reservations (
  order_id uuid not null references kitchen_orders (id) on delete cascade,
  ingredient text not null references kitchen_stock (ingredient),
  quantity numeric not null check (quantity > 0),
  primary key (order_id, ingredient)
);

create table kitchen_warehouse_events (
  id bigserial primary key,
  webhook_id text not null unique,            -- Standard Webhooks id: a redelivery is a no-op
  type text not null,
  payload jsonb not null,
  occurred_at timestamptz not null,${WORK}
);
${workIndexes('kitchen_warehouse_events')}

-- Order status changes waiting to be published to RabbitMQ (written in the transition's transaction).
create table kitchen_outbox (
  id bigserial primary key,
  event_id uuid not null unique,
  order_id uuid not null,
  tenant_id text not null,
  state text not null,
  reason text,
  occurred_at timestamptz not null default now(),${WORK}
);
${workIndexes('kitchen_outbox')}

-- Every document sent to 1C: 'sending' is written before the request, 'sent' after 1C accepted it,
-- so a resumed export knows exactly which documents to check instead of sending them again.
create table kitchen_onec_documents (
  id bigserial primary key,
  period_key text not null,
  doc_type text not null,
  source_id text not null,
  ref_key uuid not null unique,
  state text not null check (state in ('sending', 'sent')),
  sent_at timestamptz,
  unique (doc_type, source_id)
);
`,
};
