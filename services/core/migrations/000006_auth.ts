// The development authorization server: partner clients for the client-credentials
// grant, and an audit of every token issued and every failed token request.
import type { Migration } from './index.js';

export const auth: Migration = {
  id: 6,
  name: 'auth',
  sql: `
-- One confidential client per smart-home partner, created from its SmartHomePartner resource.
create table auth_clients (
  client_id text primary key,
  partner text not null,                     -- the SmartHomePartner's name
  scopes text[] not null,                    -- RabbitMQ scopes (services/domains/partner-access/scopes.ts)
  secret_hash text,                          -- sha256 of the secret; null until one is issued
  active boolean not null default true,      -- a disabled client gets no token
  secret_rotated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Every token request that reached the token endpoint: who, from where, when, and how it ended.
create table auth_token_events (
  id bigserial primary key,
  at timestamptz not null default now(),
  client_id text,                            -- as presented; null when none was
  source_address text,
  outcome text not null check (outcome in
    ('issued', 'unknown_client', 'bad_secret', 'disabled_client', 'invalid_request', 'invalid_scope', 'server_error')),
  grant_type text,
  scope text,                                -- what was granted
  token_id text,                             -- the access token's jti
  expires_at timestamptz,
  error text                                 -- the error description answered to the client
);
create index auth_token_events_at on auth_token_events (at);
create index auth_token_events_client on auth_token_events (client_id, at);
`,
};
