// Re-delivery of tenant events after an api replica's Redis subscription was lost: the events of
// the tenants connected to that replica from the last minutes are read back by tenant and time.
import type { Migration } from './index.js';

export const tenantEventCatchUp: Migration = {
  id: 10,
  name: 'tenant_event_catch_up',
  // Plain (not concurrent) builds, as every migration runs in a transaction: smart_home_commands
  // holds only the results' retention (minutes), and kitchen_outbox the done rows of the retention
  // days, a build of a second or two at the volumes in docs/kitchen.md. Subscriptions need no new
  // index: unique (tenant_id, service) finds a tenant's two rows.
  sql: `
create index smart_home_commands_tenant_ended on smart_home_commands (tenant_id, completed_at) where completed_at is not null;
create index kitchen_outbox_tenant_published on kitchen_outbox (tenant_id, finished_at) where status = 2;
`,
};
