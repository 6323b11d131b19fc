// The Node side of tests/libraries.rs (issue 30): npm `memcached` (with
// `hashring`) and `memjs`, the real libraries, write and read back typed
// values. One process per case; commands on stdin, one JSON line each:
//
//   write TAG SERVERS   every key, with the list SERVERS   {"written": N}
//   read TAG SERVERS    every key, with the list SERVERS   {"hit", "missing", "wrong", "example"}
//
// argv: FAMILY (node-memcached | memjs) COUNT KINDS (ascii | utf8) [NAMESPACE]
// SERVERS: comma-separated host:port[:weight] (weights: node-memcached).
// The keys and values are those of tests/clients/keys.md.
'use strict';
const readline = require('readline');

const [family, countText, kinds, namespace] = process.argv.slice(2);
const count = Number(countText);

function key(i) {
  if (kinds !== 'ascii') {
    if (i % 10 === 3) return `ключ:${i}`;
    if (i % 10 === 5) return `日本😀:${i}`;
  }
  if (i % 10 === 1) return `{user:${i}}:session`;
  if (i % 10 === 9) return `long:${i}:` + 'x'.repeat(i % 200);
  return `user:${i}@example.com`;
}

function value(tag, i) {
  switch (i % 4) {
    case 0: return `${tag}:${i}`;
    case 1: return i * 7 + 1;
    case 2: return `${tag}:${i}:é`;
    default: return { tag, i };
  }
}

function same(got, want) {
  return JSON.stringify(got) === JSON.stringify(want) && typeof got === typeof want;
}

// memjs stores Buffers and no flags of its own: a serializer of the kind
// its users write keeps the type in the flags (1 string, 2 number, 3 JSON).
const typed = {
  serialize(opcode, value, extras) {
    const [flag, text] = typeof value === 'string' ? [1, value]
      : typeof value === 'number' ? [2, String(value)] : [3, JSON.stringify(value)];
    extras.writeUInt32BE(flag, 0);
    return { value: Buffer.from(text), extras };
  },
  deserialize(opcode, value, extras) {
    const flag = extras && extras.length >= 4 ? extras.readUInt32BE(0) : 0;
    const text = value.toString();
    const out = flag === 1 ? text : flag === 2 ? Number(text) : flag === 3 ? JSON.parse(text) : value;
    return { value: out, extras };
  },
};

function client(servers) {
  if (family === 'node-memcached') {
    const Memcached = require('memcached');
    const weighted = servers.some((s) => s.split(':').length === 3);
    let arg = servers;
    if (weighted) {
      arg = {};
      for (const s of servers) {
        const [host, port, weight] = s.split(':');
        arg[`${host}:${port}`] = Number(weight || 1);
      }
    }
    const options = { retries: 0, timeout: 5000, idle: 1000 };
    if (namespace) options.namespace = namespace;
    const c = new Memcached(arg, options);
    return {
      set: (k, v) => new Promise((ok, no) => c.set(k, v, 0, (e) => (e ? no(e) : ok()))),
      get: (k) => new Promise((ok, no) => c.get(k, (e, v) => (e ? no(e) : ok(v)))),
      end: () => c.end(),
    };
  }
  if (family === 'memjs') {
    const memjs = require('memjs');
    const c = memjs.Client.create(servers.join(','), { serializer: typed, retries: 0, timeout: 5 });
    return {
      set: async (k, v) => { if (!(await c.set(k, v, {}))) throw new Error(`set ${k} refused`); },
      get: async (k) => { const r = await c.get(k); return r.value === null ? undefined : r.value; },
      end: () => c.close(),
    };
  }
  throw new Error(`unknown family ${family}`);
}

async function run(command, tag, servers) {
  const c = client(servers.split(','));
  try {
    if (command === 'write') {
      for (let i = 0; i < count; i++) await c.set(key(i), value(tag, i));
      return { written: count };
    }
    if (command === 'read') {
      let hit = 0, missing = 0, wrong = 0, example = null;
      for (let i = 0; i < count; i++) {
        const got = await c.get(key(i));
        if (got === undefined || got === null || got === false) { missing++; example = example || `missing ${key(i)}`; }
        else if (!same(got, value(tag, i))) { wrong++; example = example || `${key(i)}: ${JSON.stringify(got)}`; }
        else hit++;
      }
      return { hit, missing, wrong, example };
    }
    throw new Error(`unknown command ${command}`);
  } finally {
    c.end();
  }
}

const lines = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;
async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const [command, tag, servers] = queue.shift().trim().split(' ');
    try {
      process.stdout.write(JSON.stringify(await run(command, tag, servers)) + '\n');
    } catch (e) {
      process.stderr.write(`${family}: ${command} ${servers}: ${e && e.stack ? e.stack : e}\n`);
      process.exit(1);
    }
  }
  busy = false;
}
lines.on('line', (line) => { queue.push(line); drain(); });
lines.on('close', async () => { await drain(); });
