// The smart-home partners as Keycloak sees them: a realm for `kc.sh start --import-realm`
// generated from the SmartHomePartner resources, and the client and client-scope representations
// the operator writes through the Admin REST API. Both use the builders below, so a partner
// imported with the realm and one registered later by the operator are the same client.
import type { SmartHomePartnerResource } from '../../contracts/smart-home-partner.js';
import { defaultCommandQueue } from '../../contracts/smart-home-partner.js';
import { partnerScopes } from './scopes.js';

/** Keycloak's protocol mapper representation, as far as the hub sets it. */
export interface KeycloakProtocolMapper {
  name: string;
  protocol: 'openid-connect';
  protocolMapper: string;
  consentRequired: boolean;
  config: Record<string, string>;
}

export interface KeycloakClientScope {
  name: string;
  description: string;
  protocol: 'openid-connect';
  attributes: Record<string, string>;
}

export interface KeycloakClient {
  clientId: string;
  name: string;
  description: string;
  enabled: boolean;
  protocol: 'openid-connect';
  publicClient: boolean;
  bearerOnly: boolean;
  consentRequired: boolean;
  serviceAccountsEnabled: boolean;
  standardFlowEnabled: boolean;
  implicitFlowEnabled: boolean;
  directAccessGrantsEnabled: boolean;
  clientAuthenticatorType: 'client-secret';
  fullScopeAllowed: boolean;
  attributes: Record<string, string>;
  protocolMappers: KeycloakProtocolMapper[];
  defaultClientScopes: string[];
  optionalClientScopes: string[];
  /** Only in the realm file, and only as a `${VARIABLE}` placeholder; Keycloak generates the others. */
  secret?: string;
}

/** Where the partners' tokens are used: RabbitMQ's vhost and `auth_oauth2.resource_server_id`. */
export interface RabbitMqTarget {
  vhost: string;
  resourceServerId: string;
}

/** A partner's client at the authorization server. */
interface PartnerClient {
  partner: string;
  clientId: string;
  commandQueue: string;
}

export const OPERATOR_CLIENT_ID = 'hub-operator';
/** The realm-management role the operator's service account holds: create and update clients and client scopes. */
const OPERATOR_ROLE = 'manage-clients';
const OPERATOR_SECRET_VARIABLE = 'HUB_OPERATOR_CLIENT_SECRET';

/** The event types the realm records: every token issued to a client, and every refused request. */
const TOKEN_EVENT_TYPES = ['CLIENT_LOGIN', 'CLIENT_LOGIN_ERROR'];
/** Events are kept 90 days: long enough to look back at a partner's failures over a quarter. */
const EVENTS_EXPIRATION_SECONDS = 90 * 24 * 3600;

/** A `${VARIABLE}` that Keycloak replaces with the environment variable's value when it imports the file. */
const placeholder = (variable: string): string => `\${${variable}}`;

/** The environment variable holding a partner client's secret for the realm import. */
export const partnerSecretVariable = (clientId: string): string =>
  `HUB_PARTNER_SECRET_${clientId.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

function partnerClientOf(r: SmartHomePartnerResource): PartnerClient {
  return {
    partner: r.metadata.name,
    clientId: r.spec.oauthClientId ?? r.metadata.name,
    commandQueue: r.spec.commandQueue ?? defaultCommandQueue(r.metadata.name),
  };
}

/** The RabbitMQ scopes a partner's tokens carry: read on its queue, write of its own replies. */
const partnerClientScopes = (p: PartnerClient, t: RabbitMqTarget): string[] =>
  partnerScopes({
    partner: p.partner,
    commandQueue: p.commandQueue,
    vhost: t.vhost,
    resourceServerId: t.resourceServerId,
  });

/** A client scope per RabbitMQ scope string; its name is what lands in the token's `scope` claim. */
export function rabbitMqClientScope(name: string): KeycloakClientScope {
  return {
    name,
    description: 'RabbitMQ permission of a smart-home partner (managed by the Integration Hub)',
    protocol: 'openid-connect',
    attributes: { 'include.in.token.scope': 'true', 'display.on.consent.screen': 'false' },
  };
}

/** RabbitMQ accepts a token only if its `aud` names `auth_oauth2.resource_server_id`. */
function audienceMapper(resourceServerId: string): KeycloakProtocolMapper {
  return {
    name: `audience ${resourceServerId}`,
    protocol: 'openid-connect',
    protocolMapper: 'oidc-audience-mapper',
    consentRequired: false,
    config: {
      'included.custom.audience': resourceServerId,
      'access.token.claim': 'true',
      'id.token.claim': 'false',
    },
  };
}

/**
 * RabbitMQ names a token's connection after its `client_id` claim (then `sub`, then whatever user
 * name the client sent). Keycloak puts `client_id` into service-account tokens only through its
 * built-in scopes, which differ between versions and which a realm that declares its own scopes
 * does not get, so the claim is set here: connections and their log lines name the partner's
 * client, never a name the partner chose.
 */
function clientIdClaimMapper(clientId: string): KeycloakProtocolMapper {
  return {
    name: 'client_id claim',
    protocol: 'openid-connect',
    protocolMapper: 'oidc-hardcoded-claim-mapper',
    consentRequired: false,
    config: {
      'claim.name': 'client_id',
      'claim.value': clientId,
      'jsonType.label': 'String',
      'access.token.claim': 'true',
      'id.token.claim': 'false',
      'userinfo.token.claim': 'false',
    },
  };
}

/** A confidential client for the client-credentials grant only, with nothing but the given scopes. */
function serviceClient(o: {
  clientId: string;
  name: string;
  description: string;
  fullScopeAllowed: boolean;
  scopes: string[];
  mappers: KeycloakProtocolMapper[];
}): KeycloakClient {
  return {
    clientId: o.clientId,
    name: o.name,
    description: o.description,
    enabled: true,
    protocol: 'openid-connect',
    publicClient: false,
    bearerOnly: false,
    consentRequired: false,
    serviceAccountsEnabled: true,
    standardFlowEnabled: false,
    implicitFlowEnabled: false,
    directAccessGrantsEnabled: false,
    clientAuthenticatorType: 'client-secret',
    fullScopeAllowed: o.fullScopeAllowed,
    // Client credentials get a new access token per request, never a refresh token.
    attributes: { 'client_credentials.use_refresh_token': 'false' },
    protocolMappers: o.mappers,
    defaultClientScopes: o.scopes,
    optionalClientScopes: [],
  };
}

/**
 * A partner's client: its two RabbitMQ scopes as its only (default) scopes, the RabbitMQ audience,
 * and no realm or client roles in its tokens (`fullScopeAllowed: false`).
 */
export function partnerClientRepresentation(p: PartnerClient, t: RabbitMqTarget): KeycloakClient {
  return serviceClient({
    clientId: p.clientId,
    name: `Smart-home partner ${p.partner}`,
    description: `RabbitMQ access of the smart-home partner ${p.partner} (queue ${p.commandQueue}); managed by the Integration Hub`,
    fullScopeAllowed: false,
    scopes: partnerClientScopes(p, t),
    mappers: [audienceMapper(t.resourceServerId), clientIdClaimMapper(p.clientId)],
  });
}

/**
 * The hub operator's client. Keycloak checks an admin call against the service account's role
 * mappings within the client's role scope, so this client keeps its full scope; it has no other
 * scopes or claims.
 */
function operatorClientRepresentation(clientId = OPERATOR_CLIENT_ID): KeycloakClient {
  return serviceClient({
    clientId,
    name: 'Integration Hub operator',
    description: 'Registers smart-home partner clients (realm-management manage-clients)',
    fullScopeAllowed: true,
    scopes: [],
    mappers: [],
  });
}

interface RealmOptions extends RabbitMqTarget {
  realm: string;
  accessTokenLifespanSeconds: number;
}

/** The realm representation, in the format `kc.sh import` and `--import-realm` read (Keycloak 24–26). */
export interface KeycloakRealm {
  realm: string;
  enabled: boolean;
  displayName: string;
  sslRequired: 'external' | 'all' | 'none';
  accessTokenLifespan: number;
  registrationAllowed: boolean;
  bruteForceProtected: boolean;
  permanentLockout: boolean;
  failureFactor: number;
  waitIncrementSeconds: number;
  maxFailureWaitSeconds: number;
  quickLoginCheckMilliSeconds: number;
  minimumQuickLoginWaitSeconds: number;
  maxDeltaTimeSeconds: number;
  eventsEnabled: boolean;
  eventsExpiration: number;
  eventsListeners: string[];
  enabledEventTypes: string[];
  adminEventsEnabled: boolean;
  adminEventsDetailsEnabled: boolean;
  clientScopes: KeycloakClientScope[];
  defaultDefaultClientScopes: string[];
  defaultOptionalClientScopes: string[];
  clients: KeycloakClient[];
  users: {
    username: string;
    enabled: boolean;
    serviceAccountClientId: string;
    clientRoles: Record<string, string[]>;
  }[];
}

/**
 * The realm of the active partners. Secrets are `${VARIABLE}` placeholders that Keycloak fills
 * from its environment at import (`partnerSecretVariable`, `OPERATOR_SECRET_VARIABLE`): the file
 * holds none. A realm that already exists is not imported again; partners added later are
 * registered by the operator.
 */
export function keycloakRealm(
  partners: readonly SmartHomePartnerResource[],
  o: RealmOptions,
): KeycloakRealm {
  const target = { vhost: o.vhost, resourceServerId: o.resourceServerId };
  const active = partners
    .filter((p) => p.spec.active)
    .map(partnerClientOf)
    .sort((a, b) => a.clientId.localeCompare(b.clientId));
  const clients = new Set([OPERATOR_CLIENT_ID]);
  const variables = new Map<string, string>();
  for (const p of active) {
    if (clients.has(p.clientId)) {
      throw new Error(
        `partner ${p.partner}: client ${p.clientId} is already taken; give the partner another oauthClientId`,
      );
    }
    clients.add(p.clientId);
    const variable = partnerSecretVariable(p.clientId);
    const taken = variables.get(variable);
    if (taken !== undefined) {
      throw new Error(
        `partner ${p.partner}: clients ${taken} and ${p.clientId} would both read their secret from ${variable}; give one another oauthClientId`,
      );
    }
    variables.set(variable, p.clientId);
  }
  const scopeNames = [...new Set(active.flatMap((p) => partnerClientScopes(p, target)))].sort();
  return {
    realm: o.realm,
    enabled: true,
    displayName: 'Integration Hub partners',
    // Plain HTTP only from private addresses (in-cluster); partners reach Keycloak over TLS.
    sslRequired: 'external',
    accessTokenLifespan: o.accessTokenLifespanSeconds,
    registrationAllowed: false,
    // Protects password logins of people an SRE may add to this realm later (its clients log in
    // with secrets, which brute-force detection does not cover: failed client logins are
    // CLIENT_LOGIN_ERROR events and the HubTokenRequestsFailing alert). 10 failures lock an
    // account for 1 minute, doubling up to 15 minutes; never permanently, so an attacker cannot
    // lock an SRE out for good.
    bruteForceProtected: true,
    permanentLockout: false,
    failureFactor: 10,
    waitIncrementSeconds: 60,
    maxFailureWaitSeconds: 900,
    quickLoginCheckMilliSeconds: 1000,
    minimumQuickLoginWaitSeconds: 60,
    maxDeltaTimeSeconds: 43_200,
    eventsEnabled: true,
    eventsExpiration: EVENTS_EXPIRATION_SECONDS,
    eventsListeners: ['jboss-logging'],
    enabledEventTypes: [...TOKEN_EVENT_TYPES],
    // Admin events record who created, changed or disabled a client (the operator or a person):
    // the audit trail of partner access. Without representations, so no secret is stored in them.
    adminEventsEnabled: true,
    adminEventsDetailsEnabled: false,
    clientScopes: scopeNames.map(rabbitMqClientScope),
    // A client created by hand in this realm gets no scope (and so no queue access) by default.
    defaultDefaultClientScopes: [],
    defaultOptionalClientScopes: [],
    clients: [
      ...active.map((p) => ({
        ...partnerClientRepresentation(p, target),
        secret: placeholder(partnerSecretVariable(p.clientId)),
      })),
      { ...operatorClientRepresentation(), secret: placeholder(OPERATOR_SECRET_VARIABLE) },
    ],
    users: [
      {
        username: `service-account-${OPERATOR_CLIENT_ID}`,
        enabled: true,
        serviceAccountClientId: OPERATOR_CLIENT_ID,
        clientRoles: { 'realm-management': [OPERATOR_ROLE] },
      },
    ],
  };
}

/** The realm as the committed file and `hub keycloak-realm` write it. */
export const realmFileText = (realm: KeycloakRealm): string =>
  `${JSON.stringify(realm, null, 2)}\n`;
