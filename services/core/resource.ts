// What every hub resource shares: the API group/version and Kubernetes-style metadata. `hub apply`
// reads the same YAML as the custom resources, so one schema serves both.
import { z } from 'zod';

export const API_VERSION = 'integration-hub.io/v1alpha1';

export const resourceMetadata = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, "-")')
      .max(63),
    namespace: z.string().optional(),
    labels: z.record(z.string()).optional(),
    annotations: z.record(z.string()).optional(),
  })
  .passthrough();

/** A resource of `kind` with the given spec schema. */
export function resourceSchema<K extends string, S extends z.ZodTypeAny>(kind: K, spec: S) {
  return z
    .object({ apiVersion: z.literal(API_VERSION), kind: z.literal(kind), metadata: resourceMetadata, spec })
    .passthrough();
}
