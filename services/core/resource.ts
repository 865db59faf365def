// What every hub resource shares: the API group/version and Kubernetes-style metadata. `hub apply`
// reads the same YAML as the custom resources, so one schema serves both.
import { z } from 'zod';
import { boundedRecord } from './validation.js';

/** Labels or annotations a resource may carry; the hub reads none of them, so only their number is checked. */
const MAX_METADATA_KEYS = 256;

export const API_VERSION = 'integration-hub.io/v1alpha1';

/** A resource's name: a DNS label. Partners' names are also their routing keys. */
export const resourceName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, "-")')
  .max(63);

const resourceMetadata = z
  .object({
    name: resourceName,
    namespace: z.string().optional(),
    labels: boundedRecord(z.string(), MAX_METADATA_KEYS).optional(),
    annotations: boundedRecord(z.string(), MAX_METADATA_KEYS).optional(),
  })
  .passthrough();

/** A resource of `kind` with the given spec schema. */
export function resourceSchema<K extends string, S extends z.ZodTypeAny>(kind: K, spec: S) {
  return z
    .object({
      apiVersion: z.literal(API_VERSION),
      kind: z.literal(kind),
      metadata: resourceMetadata,
      spec,
    })
    .passthrough();
}
