// Kitchen refunds and ordered status events: an order that fails after its payment was approved is
// refunded through the gateway (the `refunded` state and the kitchen_refunds work table), and every
// order carries a version that each change increments and its status event repeats, with the
// robots' production status (queued, cooking, done, failed) as part of the order.
import type { Migration } from './index.js';

export const kitchenRefunds: Migration = {
  id: 5,
  name: 'kitchen_refunds',
  sql: `
alter table kitchen_orders drop constraint kitchen_orders_state_check;
alter table kitchen_orders add constraint kitchen_orders_state_check check (state in
  ('awaiting_payment', 'payment_pending', 'payment_declined', 'paid', 'in_production', 'produced', 'failed', 'refunded'));
-- Incremented by every transition; consumers drop a status event not newer than the last delivered.
alter table kitchen_orders add column version bigint not null default 0;
alter table kitchen_orders add column refunded_at timestamptz;
-- Events queued before versions existed keep 0, which consumers treat as unversioned.
alter table kitchen_outbox add column version bigint not null default 0;
-- The robots' status of the order's production, reported to the tenant while it cooks.
alter table kitchen_orders add column production_status text;
alter table kitchen_outbox add column production_status text;

-- A payment whose attempts ran out on timeouts or gateway errors may have been charged: 'unknown'.
alter table kitchen_payments drop constraint kitchen_payments_outcome_check;
alter table kitchen_payments add constraint kitchen_payments_outcome_check check (outcome in ('approved', 'declined', 'failed', 'unknown'));

-- Refunds of failed orders whose payment was approved (or may have been), queued in the
-- transaction that failed the order. One per order; the gateway sees the same Idempotency-Key on
-- every retry.
create table kitchen_refunds (
  id bigserial primary key,
  order_id uuid not null unique references kitchen_orders (id),
  idempotency_key text not null unique,       -- refund:<order id>
  gateway_payment_id text,                    -- null: the payment's outcome is unknown; the gateway is asked first
  amount_minor bigint not null check (amount_minor > 0),
  currency text not null,
  reason text not null,                       -- sent to the gateway: why the order failed
  outcome text check (outcome in ('refunded', 'refused', 'failed', 'not_charged')),
  gateway_refund_id text,
  refunded_at timestamptz,
  status smallint not null default 0,        -- 0 new, 1 in progress, 2 done, 3 error
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
create index kitchen_refunds_due on kitchen_refunds (next_attempt_at, id) where status in (0, 1);
create index kitchen_refunds_failed on kitchen_refunds (id) where status = 3;
create trigger kitchen_refunds_notify after insert on kitchen_refunds for each statement execute function hub_notify_work();
`,
};
