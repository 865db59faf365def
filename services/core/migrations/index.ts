// The ordered list of schema migrations. Append only: a migration that has shipped never changes.
import { core } from './000001_core.js';
import { allio } from './000002_allio.js';
import { smartHome } from './000003_smart_home.js';
import { kitchen } from './000004_kitchen.js';
import { kitchenRefunds } from './000005_kitchen_refunds.js';
import { auth } from './000006_auth.js';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [core, allio, smartHome, kitchen, kitchenRefunds, auth];
