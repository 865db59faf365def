// The ALLIO sync worker's fair share of the quota: a weight and a virtual time per integration, the
// shared virtual clock, and an index that finds one integration's due upsert tasks in order.
import type { Migration } from './index.js';

export const allioFairShare: Migration = {
  id: 13,
  name: 'allio_fair_share',
  // Columns with constant defaults are added without rewriting the table.
  sql: `
-- spec.weight of the AllioIntegration (1-100): its share of the requests while others also wait.
alter table allio_integrations add column weight int not null default 1
  constraint allio_integrations_weight check (weight between 1 and 100);
-- Finish tag of the integration's last claimed batch, in requests per unit of weight (docs/allio.md).
alter table allio_integrations add column sync_vtime double precision not null default 0;

-- One row: the virtual time of the last claim. Claims lock it, so they run one after another (a few
-- per second: the quota's rate), and an integration that was idle starts from it, not from the past.
create table allio_sync_clock (
  id boolean primary key default true constraint allio_sync_clock_one check (id),
  vtime double precision not null default 0
);
insert into allio_sync_clock default values;

-- Per integration, its due upsert tasks oldest first: "has it due work" and its next batch are each
-- a short range scan, whatever another integration's backlog.
create index allio_tasks_fair on allio_tasks (integration_id, next_attempt_at, id)
  where status in (0, 1) and op = 'upsert';
`,
};
