// `hub apply` declares the queue of every active SmartHomePartner it wrote, so the partner can
// consume it as soon as apply returns (the mq-bridge and the operator declare it with the same
// function; the mq-bridge would otherwise do it only when it learns of the partner), and unbinds
// an inactive one's queue as the operator does.
import amqp from 'amqplib';
import { toError } from '../core/errors.js';
import {
  assertBaseTopology,
  assertPartnerTopology,
  unbindPartnerTopology,
  type PartnerTopology,
} from '../contracts/smart-home-topology.js';

/** NOT_FOUND: unbinding a queue that was never declared (a partner applied inactive from the start). */
const AMQP_NOT_FOUND = 404;

/**
 * Declares the exchanges and each active partner's command queue and binding on the broker at
 * `amqpUrl`, and unbinds each inactive one's queue.
 */
export async function applyPartnerTopologies(
  amqpUrl: string,
  partners: { declare: readonly PartnerTopology[]; unbind: readonly PartnerTopology[] },
): Promise<void> {
  if (partners.declare.length + partners.unbind.length === 0) return;
  let conn: amqp.ChannelModel | undefined;
  try {
    conn = await amqp.connect(amqpUrl, { clientProperties: { connection_name: 'hub-cli apply' } });
    // A connection that the broker closes (a refused declaration) must not kill the CLI with an unhandled 'error'.
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await assertBaseTopology(ch);
    for (const p of partners.declare) await assertPartnerTopology(ch, p);
    await ch.close();
    for (const p of partners.unbind) {
      // A channel each: the broker closes the channel of an unbind that names no queue.
      const u = await conn.createChannel();
      u.on('error', () => undefined);
      try {
        await unbindPartnerTopology(u, p);
        await u.close();
      } catch (thrown) {
        if ((thrown as { code?: unknown }).code !== AMQP_NOT_FOUND) throw thrown;
      }
    }
  } catch (thrown) {
    const err = toError(thrown);
    throw new Error(
      `declaring the partner queues on RabbitMQ failed (${err.message}); the partners are applied: apply again, or the running mq-bridge declares them`,
      { cause: thrown },
    );
  } finally {
    await conn?.close().catch(() => undefined);
  }
}
