// What a partner may do in RabbitMQ, as OAuth2 scopes in the form RabbitMQ's OAuth 2.0 backend
// reads: `<resource server id>.<read|write|configure>:<vhost>/<name>[/<routing key>]`, the vhost
// URL-encoded (the default vhost "/" is "%2F"). The same strings are the partner clients' scopes
// at the development authorization server and at Keycloak (as client scopes), so a token from
// either grants the same access.
import { z } from 'zod';
import { REPLIES_EXCHANGE } from '../../contracts/smart-home-topology.js';

/** RabbitMQ's `auth_oauth2.resource_server_id`: the tokens' audience and the scopes' prefix. */
export const DEFAULT_RESOURCE_SERVER_ID = 'rabbitmq';

interface PartnerAccess {
  /** The partner's name: the routing key of its commands and of its replies. */
  partner: string;
  commandQueue: string;
  /** The RabbitMQ virtual host the partners use. */
  vhost: string;
  resourceServerId: string;
}

/**
 * Read on its own command queue (to consume it) and write on the replies exchange under its own
 * routing key only (a topic permission), so a partner can neither read another's commands nor
 * answer in another's name. Nothing else: it declares nothing and reads no other queue.
 */
export function partnerScopes(a: PartnerAccess): string[] {
  const vhost = encodeURIComponent(a.vhost);
  return [
    `${a.resourceServerId}.read:${vhost}/${a.commandQueue}`,
    `${a.resourceServerId}.write:${vhost}/${REPLIES_EXCHANGE}/${a.partner}`,
  ];
}

/** Where partners' RabbitMQ scopes point: read by the auth server, the operator and `hub apply`. */
export const partnerScopeEnv = z.object({
  RABBITMQ_RESOURCE_SERVER_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, "_" and "-"')
    .default(DEFAULT_RESOURCE_SERVER_ID),
  /** The RabbitMQ virtual host partners use; part of their scopes. */
  RABBITMQ_PARTNER_VHOST: z.string().min(1).default('/'),
});
