// Print the worker's events as JSON lines, de-duplicated on event_id.
//
//   TWAP_AMQP_URL=amqp://guest:guest@localhost:5672/ TWAP_NAMESPACE=twap \
//     node subscribe_events.js --bind 'slice.*.alpha_1' --bind 'parent.#'
//
// Routing keys are `{event_type}.{strategy_id}` (control events: `control.{what}`). Writes
// `ready` on stderr once bound; with --until TYPE it exits after the first event of that type.
//
// Fills are also summed up for a person on stderr (stdout stays one JSON event per line):
//   fill: slice 0 AAPL buy 4 @ 190.2700000000 (parent filled 4, avg 190.2700000000)
//   completed: AAPL buy filled 7 of 7, avg 190.2700000000, outcome filled
'use strict';

const amqp = require('amqplib');
const { parseArgs } = require('node:util');

const { values: args } = parseArgs({
  options: {
    bind: { type: 'string', multiple: true },
    until: { type: 'string' },
  },
});

// A readable line for a fill or a parent's end; null for other events.
function fillLine(event) {
  if (event.event_type === 'slice.fill') {
    return (
      `fill: slice ${event.slice_num} ${event.symbol} ${event.side} ` +
      `${event.fill_qty} @ ${event.fill_price} ` +
      `(parent filled ${event.parent_filled_qty}, avg ${event.parent_avg_fill_price})`
    );
  }
  if (event.event_type === 'parent.completed') {
    const avg = event.avg_fill_price ?? '-'; // null when nothing filled
    return (
      `completed: ${event.symbol} ${event.side} filled ${event.filled_qty} ` +
      `of ${event.total_qty}, avg ${avg}, outcome ${event.outcome}`
    );
  }
  return null;
}

async function main() {
  const url = process.env.TWAP_AMQP_URL || 'amqp://guest:guest@localhost:5672/';
  const namespace = process.env.TWAP_NAMESPACE || 'twap';
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.prefetch(100);
  // The worker declares the exchange; declaring it here too (same arguments) lets the
  // subscriber start first.
  const exchange = `${namespace}.events`;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  for (const pattern of args.bind || ['#']) {
    await channel.bindQueue(queue, exchange, pattern);
  }
  console.error('ready');
  const seen = new Set(); // delivery is at least once
  await new Promise((resolve) => {
    channel.consume(queue, (message) => {
      if (message === null) return resolve(); // the broker canceled the consumer
      channel.ack(message);
      const event = JSON.parse(message.content.toString('utf8'));
      if (seen.has(event.event_id)) return undefined;
      seen.add(event.event_id);
      console.log(JSON.stringify(event));
      const line = fillLine(event);
      if (line !== null) console.error(line);
      if (event.event_type === args.until) resolve();
      return undefined;
    });
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await connection.close();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 3;
});
