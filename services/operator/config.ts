// The operator's configuration: the shared variables, RabbitMQ for partner topology, and where it
// watches and keeps its leader Lease (the chart fills these from the pod's namespace).
import { z } from 'zod';
import { amqpEnv, baseEnv, databaseEnv } from '../core/config.js';

const namespace = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes namespace name');

export const operatorEnv = baseEnv.merge(databaseEnv).merge(amqpEnv).merge(
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
  }),
);
export type OperatorConfig = z.infer<typeof operatorEnv>;
