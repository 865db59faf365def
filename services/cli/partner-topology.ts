// `hub apply` declares the queue of every active SmartHomePartner it wrote, so the partner can
// consume it as soon as apply returns (the mq-bridge and the operator declare it with the same
// function; the mq-bridge would otherwise do it only when it learns of the partner).
import amqp from 'amqplib';
import { toError } from '../core/errors.js';
import { assertBaseTopology, assertPartnerTopology, type PartnerTopology } from '../mq-bridge/topology.js';

/** Declares the exchanges and each partner's command queue and binding on the broker at `amqpUrl`. */
export async function declarePartnerTopologies(amqpUrl: string, partners: readonly PartnerTopology[]): Promise<void> {
  if (partners.length === 0) return;
  let conn: amqp.ChannelModel | undefined;
  try {
    conn = await amqp.connect(amqpUrl, { clientProperties: { connection_name: 'hub-cli apply' } });
    // A connection that the broker closes (a refused declaration) must not kill the CLI with an unhandled 'error'.
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await assertBaseTopology(ch);
    for (const p of partners) await assertPartnerTopology(ch, p);
    await ch.close();
  } catch (thrown) {
    const err = toError(thrown);
    throw new Error(`declaring the partner queues on RabbitMQ failed (${err.message}); the partners are applied: apply again, or the running mq-bridge declares them`, { cause: err });
  } finally {
    await conn?.close().catch(() => undefined);
  }
}
