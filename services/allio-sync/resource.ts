// The AllioIntegration resource: the YAML that `hub apply -f` reads and that the Kubernetes
// custom resource of the same kind carries. One schema for both, so they cannot drift.
import { z } from 'zod';
import { API_VERSION, resourceSchema } from '../core/resource.js';

export { API_VERSION };

const secretKeyRef = z.object({
  name: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes Secret name'),
  key: z.string().regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret data key'),
});

export const allioIntegrationSpec = z
  .object({
    integrationUuid: z.string().uuid('must be a UUID'),
    webhookKey: z
      .string()
      .min(16, 'must be at least 16 characters: it is the only secret in the public webhook URL')
      .max(128)
      .regex(/^[A-Za-z0-9_-]+$/, 'may contain only letters, digits, "-" and "_"'),
    apiBaseUrl: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
    apiToken: z.string().min(1).optional(),
    apiTokenSecretRef: secretKeyRef.optional(),
    deletionControl: z.boolean().default(false),
    active: z.boolean().default(true),
  })
  .strict()
  .refine((s) => (s.apiToken === undefined) !== (s.apiTokenSecretRef === undefined), {
    message: 'set exactly one of apiToken or apiTokenSecretRef',
    path: ['apiToken'],
  });

export const allioIntegrationResource = resourceSchema('AllioIntegration', allioIntegrationSpec);

export type AllioIntegrationResource = z.infer<typeof allioIntegrationResource>;
export type AllioIntegrationSpec = z.infer<typeof allioIntegrationSpec>;
