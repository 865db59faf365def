// Processes that cache integrations (the webhook ingress looks them up by webhook key) learn of
// every change at once: any statement on allio_integrations notifies `hub_work` with the table's
// name, as work tables do for inserts.
import type { Migration } from './index.js';

export const integrationChangeNotify: Migration = {
  id: 14,
  name: 'integration_change_notify',
  sql: `
create trigger allio_integrations_notify after insert or update or delete or truncate on allio_integrations
  for each statement execute function hub_notify_work();
`,
};
