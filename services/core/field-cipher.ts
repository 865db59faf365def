// Encryption at rest for personal data: AES-256-GCM with a random 96-bit IV per value, the row's
// own id as additional data (a ciphertext moved to another row does not decrypt), and a key id in
// every value so that keys can be rotated: the first key encrypts, every listed key decrypts.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { z } from 'zod';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** `DATA_ENCRYPTION_KEYS`: comma-separated `id:base64key` pairs, each key 32 bytes; the first encrypts. */
export const encryptionKeysEnv = z.object({
  DATA_ENCRYPTION_KEYS: z
    .string({ required_error: 'is required (comma-separated id:base64 32-byte keys)' })
    .transform((v, ctx) => {
      const keys = new Map<string, Buffer>();
      for (const part of v
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const m = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/=]+)$/.exec(part);
        const key = m?.[2] ? Buffer.from(m[2], 'base64') : undefined;
        if (!m?.[1] || !key || key.length !== 32) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            message: 'must be id:base64 pairs of 32-byte keys (openssl rand -base64 32)',
          });
          return z.NEVER;
        }
        keys.set(m[1], key);
      }
      if (keys.size === 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must name at least one key' });
        return z.NEVER;
      }
      return keys;
    }),
});

export class FieldCipher {
  private readonly currentId: string;

  constructor(private readonly keys: ReadonlyMap<string, Buffer>) {
    const first = keys.keys().next();
    if (first.done) throw new Error('FieldCipher needs at least one key');
    this.currentId = first.value;
  }

  /** Layout: version(1) | idLength(1) | id | iv(12) | tag(16) | ciphertext. */
  encrypt(plain: unknown, context: string): Buffer {
    const key = this.keys.get(this.currentId) as Buffer;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(JSON.stringify(plain), 'utf8'), cipher.final()]);
    const id = Buffer.from(this.currentId);
    return Buffer.concat([Buffer.from([VERSION, id.length]), id, iv, cipher.getAuthTag(), body]);
  }

  decrypt<T = unknown>(sealed: Buffer, context: string): T {
    if (sealed[0] !== VERSION) throw new Error(`unknown encrypted value version ${sealed[0]}`);
    const idLength = sealed[1] ?? 0;
    const id = sealed.subarray(2, 2 + idLength).toString();
    const key = this.keys.get(id);
    if (!key) throw new Error(`encryption key "${id}" is not configured (DATA_ENCRYPTION_KEYS)`);
    let at = 2 + idLength;
    const iv = sealed.subarray(at, (at += IV_BYTES));
    const tag = sealed.subarray(at, (at += TAG_BYTES));
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([decipher.update(sealed.subarray(at)), decipher.final()]);
    return JSON.parse(plain.toString('utf8')) as T;
  }
}
