// Engine tables: the wake-up trigger every work table uses, and the once-per-period run table.
import type { Migration } from './index.js';

export const core: Migration = {
  id: 1,
  name: 'core',
  sql: `
-- One channel for all work tables; the payload names schema.table so that several hubs (or test
-- runs) sharing one database wake only their own reconcilers.
create function hub_notify_work() returns trigger language plpgsql as $$
begin
  perform pg_notify('hub_work', tg_table_schema || '.' || tg_table_name);
  return null;
end $$;

-- Periodic work (daily deletion sweep, hourly exports): one row per (name, period), inserted with
-- ON CONFLICT DO NOTHING by every replica, then claimed like any other work row.
create table periodic_runs (
  id bigserial primary key,
  name text not null,
  period_key text not null,
  status smallint not null default 0,       -- 0 new, 1 in progress, 2 done, 3 error
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  result jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  unique (name, period_key)
);
create index periodic_runs_due on periodic_runs (next_attempt_at) where status in (0, 1);
create trigger periodic_runs_notify after insert on periodic_runs
  for each statement execute function hub_notify_work();
`,
};
