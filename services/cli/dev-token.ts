// `hub dev token`: a tenant's access token from the development identity provider that `npm start`
// runs (port 4020 unless TENANT_IDP_PORT says otherwise), for calling the tenant API with curl.
import { z } from 'zod';

/** The port `npm start` runs the development identity provider on (services/hub/main.ts). */
export const devIdpEnv = z.object({
  TENANT_IDP_PORT: z.coerce.number().int().min(1).max(65535).default(4020),
});

const answer = z.object({ accessToken: z.string().min(1) });
const refusal = z.object({ message: z.string() });

/** Asks the provider at `idpUrl` for a token of `tenant`; throws with a sentence saying what to fix. */
export async function fetchDevToken(
  idpUrl: string,
  tenant: string,
  ttlSeconds: number,
): Promise<string> {
  const url = new URL('/dev/token', idpUrl);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant, ttlSeconds }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (thrown) {
    throw new Error(
      `no development identity provider answers at ${idpUrl}: start the hub with \`npm start\` (without TENANT_JWT_ISSUER), or pass --idp-url`,
      { cause: thrown },
    );
  }
  const body: unknown = await res.json().catch(() => undefined);
  if (res.ok) {
    const ok = answer.safeParse(body);
    if (ok.success) return ok.data.accessToken;
  }
  const why = refusal.safeParse(body);
  throw new Error(
    `the identity provider at ${idpUrl} refused (${res.status}): ${why.success ? why.data.message : 'not a development identity provider'}`,
  );
}
