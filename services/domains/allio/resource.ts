// The AllioIntegration resource: the YAML that `hub apply -f` reads and that the Kubernetes
// custom resource of the same kind carries. One schema for both, so they cannot drift.
import { z } from 'zod';
import { API_VERSION, resourceSchema } from '../../core/resource.js';

export { API_VERSION };

const secretName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes Secret name');

const secretKeyRef = z.object({
  name: secretName,
  // No leading dot: "." and ".." are directories, and "..data" is the Secret volume's own link.
  key: z
    .string()
    .regex(
      /^[-_a-zA-Z0-9][-._a-zA-Z0-9]*$/,
      'must be a Secret data key (letters, digits, "-", "_", "."; not starting with ".")',
    ),
});

/** The last segment of the public webhook URL, and the only secret in it. */
export const webhookKeyValue = z
  .string()
  .min(16, 'must be at least 16 characters: it is the only secret in the public webhook URL')
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, "-" and "_"');

/**
 * The one Secret an integration may read its token from: `allio-<integration name>`. Whoever may
 * edit one integration must not be able to point it at another's Secret (and send that token to a
 * URL of their choosing); the name binds them, and allio-sync checks it again when reading.
 */
export function boundSecretName(integrationName: string): string {
  return `allio-${integrationName}`;
}

/** Highest spec.weight: a 100:1 split is already far beyond what one client should get over another. */
const MAX_WEIGHT = 100;

const allioIntegrationSpec = z
  .object({
    integrationUuid: z.string().uuid('must be a UUID'),
    /** Inline key: for development and `hub apply` on a workstation; production uses the Secret. */
    webhookKey: webhookKeyValue.optional(),
    webhookKeySecretRef: secretKeyRef.optional(),
    apiBaseUrl: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
    apiToken: z.string().min(1).optional(),
    apiTokenSecretRef: secretKeyRef.optional(),
    deletionControl: z.boolean().default(false),
    active: z.boolean().default(true),
    /**
     * Share of ALLIO's requests while other integrations behind the same egress IP also wait: one
     * with weight 3 gets three requests for every one of a weight-1 integration (docs/allio.md).
     */
    weight: z.number().int('must be a whole number').min(1).max(MAX_WEIGHT).default(1),
  })
  .strict()
  .refine((s) => (s.apiToken === undefined) !== (s.apiTokenSecretRef === undefined), {
    message: 'set exactly one of apiToken or apiTokenSecretRef',
    path: ['apiToken'],
  })
  .refine((s) => (s.webhookKey === undefined) !== (s.webhookKeySecretRef === undefined), {
    message: 'set exactly one of webhookKey or webhookKeySecretRef',
    path: ['webhookKey'],
  });

export const allioIntegrationResource = resourceSchema(
  'AllioIntegration',
  allioIntegrationSpec,
).superRefine((r, ctx) => {
  const ref = r.spec.apiTokenSecretRef;
  // A malformed name already has its issue; the binding is only worth saying about a real name.
  if (
    ref &&
    secretName.safeParse(ref.name).success &&
    ref.name !== boundSecretName(r.metadata.name)
  ) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['spec', 'apiTokenSecretRef', 'name'],
      message: `must be ${boundSecretName(r.metadata.name)}: an integration may only read the Secret bound to it by name`,
    });
  }
});

export type AllioIntegrationResource = z.infer<typeof allioIntegrationResource>;
