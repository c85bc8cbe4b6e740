'use strict';
/*
 * The Node.js peer for the receiver benchmarks: a WhatsApp webhook receiver as a competent
 * Node team would write it, with the same guarantees as bench/python-baseline/app.py, which
 * it mirrors. node:http serves POST /webhook; the X-Hub-Signature-256 header is checked
 * against HMAC-SHA256 of the raw body in constant time (crypto.timingSafeEqual), 401 on
 * mismatch; every messages[] / statuses[] item becomes one Kafka record (the same small
 * CloudEvent, keyed <phone_number_id>:<user_id or wa_id>, header
 * content-type: application/cloudevents+json), produced by kafkajs (pure JavaScript) with
 * acks=all (-1) and idempotence (which kafkajs allows only with maxInFlightRequests: 1);
 * the request is answered 200 only after every record of it was acknowledged, else 503
 * (Retry-After: 5), also when that takes more than 10 s. A body that is not a JSON object
 * is answered 200 and produces nothing, like the Python peer.
 *
 * Run (Node 18 or newer):
 *
 *   cd bench/peers/node && npm ci
 *   node server.js --listen 127.0.0.1:PORT --brokers 127.0.0.1:PORT --topic T --secret S \
 *                  [--partitions 12] [--workers 1]
 *
 * The options are the Python peer's (app.py), with the same meanings and defaults except the
 * topic's (bench-node.inbound). Each may instead come from the environment; a command-line
 * option wins:
 *
 *   --listen HOST:PORT   LISTEN=HOST:PORT, or PORT=N (host 127.0.0.1)   default 127.0.0.1:8091
 *   --brokers LIST       KAFKA_BROKERS=host:port[,host:port...]         required
 *   --topic T            TOPIC=T                                        default bench-node.inbound
 *   --secret S           APP_SECRET=S                                   required
 *   --partitions N       PARTITIONS=N   (when the topic is created)     default 12
 *   --workers N          WORKERS=N      (node:cluster worker processes sharing the port,
 *                                        each with its own producer)   default 1
 *
 * At start the topic is created (N partitions, replication 1) unless it exists. The line
 * `listening on http://HOST:PORT` goes to stderr once requests are served. SIGTERM or
 * SIGINT stops it.
 *
 * Producer settings, next to the Python peer's librdkafka ones: acks=all and idempotence
 * as there; the default kafkajs partitioner is murmur2 over the key, as librdkafka's
 * murmur2_random is for keyed records; librdkafka's linger.ms=2 has no kafkajs setting, so
 * records of concurrent requests are gathered for 2 ms into one sendBatch, and one
 * sendBatch is in flight at a time (what maxInFlightRequests: 1 allows per broker anyway,
 * and which keeps the idempotent producer's sequence numbers in order).
 */

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const http = require('node:http');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

const MAX_BODY = 4 * 1024 * 1024; // aiohttp client_max_size in the Python peer
const ACK_TIMEOUT_MS = 10_000;
const LINGER_MS = 2;
const MAX_BATCH_BYTES = 1_000_000; // under the broker's default message.max.bytes

function parseArgs(argv, env) {
  const opts = {
    listen: env.LISTEN || (env.PORT ? `127.0.0.1:${env.PORT}` : '127.0.0.1:8091'),
    brokers: env.KAFKA_BROKERS || '',
    topic: env.TOPIC || 'bench-node.inbound',
    secret: env.APP_SECRET || '',
    partitions: Number(env.PARTITIONS || 12),
    workers: Number(env.WORKERS || 1),
  };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].split(/=(.*)/s, 2);
    if (!name.startsWith('--') || !(name.slice(2) in opts)) usage(`unknown argument ${argv[i]}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      value = argv[++i];
    }
    const key = name.slice(2);
    opts[key] = key === 'partitions' || key === 'workers' ? Number(value) : value;
  }
  if (!opts.brokers) usage('--brokers (or KAFKA_BROKERS) is required');
  if (!opts.secret) usage('--secret (or APP_SECRET) is required');
  if (!/^.+:\d+$/.test(opts.listen)) usage(`--listen wants HOST:PORT, not ${opts.listen}`);
  for (const key of ['partitions', 'workers']) {
    if (!Number.isInteger(opts[key]) || opts[key] < 1) usage(`--${key} must be a positive integer`);
  }
  return opts;
}

function usage(message) {
  process.stderr.write(
    `server.js: ${message}\n` +
      'usage: node server.js --listen HOST:PORT --brokers HOST:PORT --topic T --secret S ' +
      '[--partitions 12] [--workers 1]\n',
  );
  process.exit(2);
}

// Python's truthiness and str(), so that `a or b` and f-string keys come out as in app.py.
function truthy(v) {
  if (Array.isArray(v)) return v.length > 0;
  if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}
function or(a, b) {
  return truthy(a) ? a : b;
}
function str(v) {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  return String(v);
}
function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function list(v) {
  return Array.isArray(v) ? v : [];
}
function get(obj, key) {
  return isObject(obj) && obj[key] !== undefined ? obj[key] : null;
}

/** [key, cloudevent] for every messages[] and statuses[] item. */
function* items(payload) {
  for (const entry of list(get(payload, 'entry'))) {
    const waba = get(entry, 'id');
    for (const change of list(get(entry, 'changes'))) {
      const value = or(get(change, 'value'), {});
      const phone = get(or(get(value, 'metadata'), {}), 'phone_number_id');
      for (const message of list(get(value, 'messages'))) {
        const customer = or(get(message, 'from_user_id'), get(message, 'from'));
        const key = `${str(phone)}:${str(customer)}`;
        yield [
          key,
          {
            specversion: '1.0',
            id: `message:${str(get(message, 'id'))}`,
            source: `/whatsapp/business-accounts/${str(waba)}`,
            type: 'whatsapp.message.received',
            subject: key,
            datacontenttype: 'application/json',
            data: { waba_id: waba, phone_number_id: phone, message },
          },
        ];
      }
      for (const status of list(get(value, 'statuses'))) {
        const customer = or(get(status, 'recipient_user_id'), get(status, 'recipient_id'));
        const key = `${str(phone)}:${str(customer)}`;
        yield [
          key,
          {
            specversion: '1.0',
            id: `status:${str(get(status, 'id'))}:${str(get(status, 'status'))}`,
            source: `/whatsapp/business-accounts/${str(waba)}`,
            type: 'whatsapp.status.updated',
            subject: key,
            datacontenttype: 'application/json',
            data: { waba_id: waba, phone_number_id: phone, status },
          },
        ];
      }
    }
  }
}

/**
 * Gathers the records of concurrent requests for LINGER_MS into one sendBatch, one sendBatch
 * in flight at a time; send() resolves once the broker acknowledged all its records.
 */
class Batcher {
  constructor(producer, topic) {
    this.producer = producer;
    this.topic = topic;
    this.pending = []; // { messages, bytes, resolve, reject }
    this.timer = null;
    this.inFlight = false;
  }

  send(messages) {
    const bytes = messages.reduce((n, m) => n + m.key.length + m.value.length, 0);
    return new Promise((resolve, reject) => {
      this.pending.push({ messages, bytes, resolve, reject });
      this.schedule();
    });
  }

  schedule() {
    if (this.inFlight || this.timer || this.pending.length === 0) return;
    this.timer = setTimeout(() => this.flush(), LINGER_MS);
  }

  async flush() {
    this.timer = null;
    this.inFlight = true;
    let taken = 0;
    let bytes = 0;
    while (taken < this.pending.length && (taken === 0 || bytes + this.pending[taken].bytes <= MAX_BATCH_BYTES)) {
      bytes += this.pending[taken].bytes;
      taken++;
    }
    const batch = this.pending.splice(0, taken);
    try {
      await this.producer.sendBatch({
        acks: -1,
        topicMessages: [{ topic: this.topic, messages: batch.flatMap((b) => b.messages) }],
      });
      for (const b of batch) b.resolve();
    } catch (error) {
      for (const b of batch) b.reject(error);
    } finally {
      this.inFlight = false;
      // What piled up while this batch was in flight goes out at once.
      if (this.pending.length > 0) this.timer = setTimeout(() => this.flush(), 0);
    }
  }
}

function makeKafka(opts) {
  return new Kafka({
    clientId: 'bench-node-peer',
    brokers: opts.brokers.split(',').map((b) => b.trim()).filter(Boolean),
    logLevel: logLevel.WARN,
  });
}

async function ensureTopic(opts) {
  const admin = makeKafka(opts).admin();
  await admin.connect();
  try {
    if ((await admin.listTopics()).includes(opts.topic)) return;
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: opts.topic, numPartitions: opts.partitions, replicationFactor: 1 }],
      });
    } catch (error) {
      if (error.type !== 'TOPIC_ALREADY_EXISTS' && !/already exists/i.test(String(error))) throw error;
    }
  } finally {
    await admin.disconnect();
  }
}

function signatureMatches(secret, body, header) {
  const expected = Buffer.from('sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex'));
  const given = Buffer.from(header || '', 'utf8');
  // Like hmac.compare_digest: a length mismatch is a mismatch; equal lengths compare in
  // constant time.
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out waiting for acknowledgements')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function reply(res, status, headers = {}) {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}

async function handleWebhook(body, header, opts, batcher) {
  if (!signatureMatches(opts.secret, body, header)) return [401];
  let payload;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return [200];
  }
  if (!isObject(payload)) return [200];
  const messages = [];
  for (const [key, event] of items(payload)) {
    messages.push({
      key,
      value: JSON.stringify(event),
      headers: { 'content-type': 'application/cloudevents+json' },
    });
  }
  if (messages.length === 0) return [200];
  try {
    await withTimeout(batcher.send(messages), ACK_TIMEOUT_MS);
  } catch {
    return [503, { 'retry-after': '5' }];
  }
  return [200];
}

async function serve(opts) {
  const producer = makeKafka(opts).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const batcher = new Batcher(producer, opts.topic);

  const server = http.createServer((req, res) => {
    const path = req.url.split('?', 1)[0];
    if (path !== '/webhook') return reply(res, 404);
    if (req.method !== 'POST') return reply(res, 405, { allow: 'POST' });
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY) {
      req.resume();
      return reply(res, 413, { connection: 'close' });
    }
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_BODY) {
        tooLarge = true;
        reply(res, 413, { connection: 'close' });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      handleWebhook(Buffer.concat(chunks, size), req.headers['x-hub-signature-256'], opts, batcher).then(
        ([status, headers]) => reply(res, status, headers),
        () => reply(res, 500),
      );
    });
    req.on('error', () => res.destroy());
  });
  server.keepAliveTimeout = 75_000; // aiohttp's keep-alive timeout

  const sep = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, sep).replace(/^\[(.*)\]$/, '$1');
  const port = Number(opts.listen.slice(sep + 1));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, resolve);
  });
  if (cluster.isPrimary || cluster.worker.id === 1) {
    process.stderr.write(`listening on http://${opts.listen}\n`);
  }

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeIdleConnections();
    producer.disconnect().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main() {
  if (cluster.isWorker) {
    return serve(JSON.parse(process.env.BENCH_NODE_PEER_OPTS));
  }
  const opts = parseArgs(process.argv.slice(2), process.env);
  await ensureTopic(opts);
  if (opts.workers === 1) return serve(opts);

  const env = { BENCH_NODE_PEER_OPTS: JSON.stringify(opts) };
  const workers = [];
  for (let i = 0; i < opts.workers; i++) workers.push(cluster.fork(env));
  let stopping = false;
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      process.stderr.write(`server.js: worker ${worker.process.pid} exited (${signal || code})\n`);
      stopping = true;
      for (const w of workers) w.kill('SIGTERM');
      process.exitCode = 1;
    }
  });
  const stop = () => {
    stopping = true;
    for (const w of workers) w.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  process.stderr.write(`server.js: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
