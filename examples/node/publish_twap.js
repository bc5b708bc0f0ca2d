// Submit a TWAP to the worker and wait for its reply.
//
//   TWAP_AMQP_URL=amqp://guest:guest@localhost:5672/ TWAP_NAMESPACE=twap \
//     node publish_twap.js --symbol AAPL --side buy --qty 100 --duration 60 --interval 10
//
// Prints the reply (JSON) on stdout. Exit status: 0 accepted or duplicate, 1 rejected,
// 2 no reply in time.
'use strict';

const amqp = require('amqplib');
const { randomUUID } = require('node:crypto');
const { parseArgs } = require('node:util');

const { values: args } = parseArgs({
  options: {
    strategy: { type: 'string', default: 'example_node' },
    symbol: { type: 'string', default: 'AAPL' },
    side: { type: 'string', default: 'buy' },
    qty: { type: 'string', default: '100' },
    duration: { type: 'string', default: '60' },
    interval: { type: 'string', default: '10' },
    'limit-price': { type: 'string' },
    timeout: { type: 'string', default: '30' },
  },
});

function submitMessage() {
  const body = {
    type: 'submit',
    strategy_id: args.strategy,
    symbol: args.symbol,
    side: args.side,
    qty: Number.parseInt(args.qty, 10),
    duration_seconds: Number.parseInt(args.duration, 10),
    interval_seconds: Number.parseInt(args.interval, 10),
    request_id: randomUUID(), // idempotency key: the same message again yields `duplicate`
  };
  if (args['limit-price']) {
    body.order_type = 'limit';
    body.limit_price = args['limit-price']; // a string keeps the decimal exact
  }
  return body;
}

async function main() {
  const url = process.env.TWAP_AMQP_URL || 'amqp://guest:guest@localhost:5672/';
  const namespace = process.env.TWAP_NAMESPACE || 'twap';
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    // A private, server-named queue for the reply; it disappears with the connection.
    const { queue: replyQueue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    const correlationId = randomUUID();
    const reply = new Promise((resolve) => {
      channel.consume(replyQueue, (message) => {
        if (message && message.properties.correlationId === correlationId) {
          resolve(JSON.parse(message.content.toString('utf8')));
        }
      }, { noAck: true });
    });
    channel.sendToQueue(`${namespace}.requests`, Buffer.from(JSON.stringify(submitMessage())), {
      contentType: 'application/json',
      persistent: true,
      correlationId,
      replyTo: replyQueue,
      messageId: randomUUID(),
    });
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), Number(args.timeout) * 1000);
    });
    const answer = await Promise.race([reply, timeout]);
    clearTimeout(timer);
    if (answer === null) {
      console.error(`no reply within ${args.timeout} s`);
      return 2;
    }
    console.log(JSON.stringify(answer));
    return answer.outcome === 'rejected' ? 1 : 0;
  } finally {
    await connection.close();
  }
}

main().then((code) => { process.exitCode = code; }, (error) => {
  console.error(error);
  process.exitCode = 3;
});
