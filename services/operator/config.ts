// The operator's configuration: the shared variables, RabbitMQ for partner topology, where it
// watches and keeps its leader Lease (the chart fills these from the pod's namespace), and the
// Keycloak where it registers partner clients.
import { z } from 'zod';
import { amqpEnv, baseEnv, databaseEnv, outboundEnv } from '../core/config.js';
import { OPERATOR_CLIENT_ID } from '../domains/partner-access/keycloak-realm.js';
import { partnerScopeEnv } from '../domains/partner-access/scopes.js';

const namespace = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes namespace name');

export const operatorEnv = baseEnv
  .merge(databaseEnv)
  .merge(amqpEnv)
  .merge(
    z.object({
      /** Namespace whose AllioIntegration and SmartHomePartner resources are reconciled. */
      WATCH_NAMESPACE: namespace,
      /** Namespace of the leader Lease (the operator's own). */
      POD_NAMESPACE: namespace,
      OPERATOR_LEASE_NAME: z.string().min(1).default('integration-hub-operator'),
      /**
       * A standby takes over this long after the leader stops renewing. 15 s is client-go's default:
       * short enough for a quick failover, long enough that an API server hiccup does not flap it.
       */
      OPERATOR_LEASE_DURATION_SECONDS: z.coerce.number().int().min(5).max(300).default(15),
      /** Every resource is re-applied this often, repairing drift (a queue deleted by hand). */
      OPERATOR_RESYNC_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(300_000),
      /**
       * Keycloak's base URL (https://sso.example.com, no /admin). Unset: the operator does not
       * manage partner clients and their OAuthClientReady condition says NotManaged. https unless
       * OUTBOUND_ALLOW_HTTP=true (development).
       */
      KEYCLOAK_URL: z
        .string()
        .url()
        .refine(
          (v) => ['http:', 'https:'].includes(new URL(v).protocol),
          'must be an http or https URL',
        )
        .optional(),
      /** The partners' realm; the operator's own client lives there too. */
      KEYCLOAK_REALM: z.string().min(1).default('integration-hub'),
      KEYCLOAK_CLIENT_ID: z.string().min(1).default(OPERATOR_CLIENT_ID),
      KEYCLOAK_CLIENT_SECRET: z.string().min(1).optional(),
      KEYCLOAK_HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
    }),
  )
  .merge(partnerScopeEnv)
  .merge(outboundEnv);

/** What the operator's entry point loads: the variables, and those that only make sense together. */
export const operatorConfig = operatorEnv.superRefine((c, ctx) => {
  if (c.KEYCLOAK_URL && !c.KEYCLOAK_CLIENT_SECRET) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['KEYCLOAK_CLIENT_SECRET'],
      message:
        "is required when KEYCLOAK_URL is set (the secret of the operator's client at Keycloak)",
    });
  }
});
