// Open-door commands in PostgreSQL: the record of each command and how it ended,
// so that a tenant learns the outcome even when Redis (smart-home-cache, the fast path) lost it.
import type { Migration } from './index.js';

export const smartHomeCommands: Migration = {
  id: 9,
  name: 'smart_home_commands',
  sql: `
create table smart_home_commands (
  command_id uuid primary key,               -- the correlation id of the command and its reply
  tenant_id text not null,
  service text not null check (service in ('intercom', 'barrier')),
  partner text not null,                     -- the partner asked (its name); only its reply counts
  status text not null default 'pending' check (status in ('pending', 'opened', 'failed', 'timeout')),
  reason text,                               -- the partner's words, for operators only
  created_at timestamptz not null default now(),
  deadline timestamptz not null,             -- a reply after it is late; the command ends 'timeout'
  completed_at timestamptz,
  -- Set when the outcome is decided: the tenant's command.result is due on Redis pub/sub by then
  -- (a lease for the process that decided it); cleared once pushed. The sweep pushes what is left.
  push_due_at timestamptz,
  check ((status = 'pending') = (completed_at is null))
);
create index smart_home_commands_pending on smart_home_commands (deadline) where status = 'pending';
create index smart_home_commands_unpushed on smart_home_commands (push_due_at) where push_due_at is not null;
create index smart_home_commands_created on smart_home_commands (created_at);
`,
};
