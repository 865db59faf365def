// The ordered list of schema migrations. Append only: a migration that has shipped never changes.
import { core } from './000001_core.js';
import { allio } from './000002_allio.js';
import { smartHome } from './000003_smart_home.js';
import { kitchen } from './000004_kitchen.js';
import { kitchenRefunds } from './000005_kitchen_refunds.js';
import { auth } from './000006_auth.js';
import { webhookKeyHash } from './000007_webhook_key_hash.js';
import { retentionDeadLetters } from './000008_retention_dead_letters.js';
import { smartHomeCommands } from './000009_smart_home_commands.js';
import { tenantEventCatchUp } from './000010_tenant_event_catch_up.js';
import { deadLetterBodyLimit } from './000011_dead_letter_body_limit.js';
import { smartHomePartnerNotify } from './000012_smart_home_partner_notify.js';
import { allioFairShare } from './000013_allio_fair_share.js';
import { integrationChangeNotify } from './000014_integration_change_notify.js';
import { smartHomeRequestState } from './000015_smart_home_request_state.js';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  core,
  allio,
  smartHome,
  kitchen,
  kitchenRefunds,
  auth,
  webhookKeyHash,
  retentionDeadLetters,
  smartHomeCommands,
  tenantEventCatchUp,
  deadLetterBodyLimit,
  smartHomePartnerNotify,
  allioFairShare,
  integrationChangeNotify,
  smartHomeRequestState,
];
