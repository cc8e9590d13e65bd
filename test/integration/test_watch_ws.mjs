// GET /v1/watch through a real stemedb-gateway in front of a real
// stemedb-server, with the `ws` client from npm: URL and multiple
// subscriptions, the JSON of events, resume, close codes, slow consumers,
// keepalive pings, freed streams, gateway shutdown and 1000 subscribers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const build = process.env.STM_BUILD_DIR || path.join(root, 'build');
const serverBin = process.env.STM_SERVER_BIN || path.join(build, 'service', 'stemedb-server');
const gatewayBin = process.env.STM_GATEWAY_BIN || path.join(build, 'gateway', 'stemedb-gateway');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms = 20000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// A server and a gateway in front of it; `env` goes to the gateway.
async function stack(serverArgs = [], env = {}) {
  const s = { dataDir: mkdtempSync(path.join(os.tmpdir(), 'stm-ws-')) };
  s.grpc = `127.0.0.1:${await freePort()}`;
  s.http = await freePort();
  s.server = spawn(serverBin, ['--data-dir', s.dataDir, '--grpc-listen', s.grpc,
    '--node-id', 'ws-test', ...serverArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  s.gateway = spawn(gatewayBin, ['--http-listen', `127.0.0.1:${s.http}`,
    '--cluster-listen', `127.0.0.1:${await freePort()}`, '--server', s.grpc],
  { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  s.base = `http://127.0.0.1:${s.http}`;
  s.ws = `ws://127.0.0.1:${s.http}/v1/watch`;
  await until(async () => {
    try { return (await fetch(`${s.base}/v1/health`)).status === 200; } catch { return false; }
  }, 30000, 'stack readiness');
  return s;
}

async function stop(s) {
  const exit = (p) => new Promise((resolve) => {
    if (p.exitCode !== null) return resolve(p.exitCode);
    p.on('exit', (code) => resolve(code));
    p.kill('SIGTERM');
  });
  const g = await exit(s.gateway);
  const v = await exit(s.server);
  rmSync(s.dataDir, { recursive: true, force: true });
  assert.equal(g, 0, 'gateway exits 0');
  assert.equal(v, 0, 'server exits 0');
}

async function post(s, route, body) {
  const r = await fetch(s.base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  assert.ok(r.status < 300, JSON.stringify(j));
  return j;
}

// Write n claims in one batch under `path`; returns their sequences.
async function batch(s, pathName, n, tag = '', big = 0) {
  const assertions = [];
  for (let i = 0; i < n; i++) {
    assertions.push({ concept_path: pathName, predicate: 'p',
      value: big ? `${'x'.repeat(big)}${tag}${i}` : `${tag}${i}` });
  }
  const r = await post(s, '/v1/assert/batch', { assertions });
  return r.results.map((x) => Number(x.sequence));
}

// A socket that records every frame; helpers wait for frames.
function open(url) {
  const ws = new WebSocket(url);
  ws.frames = [];
  ws.pings = 0;
  ws.on('message', (d) => ws.frames.push(JSON.parse(d.toString())));
  ws.on('ping', () => { ws.pings++; });
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.opened = new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  ws.claims = (id) => ws.frames.filter((f) => f.type === 'claim' && (id === undefined || f.id === id));
  return ws;
}

let s;
// Every test client connects from 127.0.0.1, and the 1000-subscriber test
// needs more than the default per-client limits (256 subscriptions, 256
// open connections).
before(async () => {
  s = await stack([], { STEMEDB_WS_MAX_SUBS_PER_CLIENT: '2000', STEMEDB_MAX_CONNECTIONS_PER_CLIENT: '0' });
});
after(async () => { await stop(s); });

test('a URL subscription gets progress first, then claims as the REST API renders them', async () => {
  const ws = open(`${s.ws}?concept_prefix=ws/url&start_sequence=0`);
  await ws.opened;
  await until(() => ws.frames.length >= 1, 10000, 'first progress');
  assert.equal(ws.frames[0].type, 'progress');
  assert.equal(ws.frames[0].id, 'default');
  const seqs = await batch(s, 'ws/url/a', 5);
  await batch(s, 'ws/other', 3);
  await until(() => ws.claims().length >= 5, 10000, 'five claims');
  assert.deepEqual(ws.claims().map((f) => f.sequence), seqs);
  const ev = ws.claims()[2];
  const rest = await (await fetch(`${s.base}/v1/assertions/${ev.claim.hash}`)).json();
  assert.deepEqual(ev.claim, rest.assertion ?? rest);
  ws.close();
  await ws.closed;
});

test('several subscriptions on one socket, tagged, with unsubscribe', async () => {
  const ws = open(s.ws);
  await ws.opened;
  ws.send(JSON.stringify({ op: 'subscribe', id: 'a', concept_prefix: 'ws/multi/a' }));
  ws.send(JSON.stringify({ op: 'subscribe', id: 'b', concept_prefix: 'ws/multi/b', types: 'claim' }));
  await until(() => ws.frames.filter((f) => f.type === 'progress').length >= 2, 10000, 'two progress frames');
  const sa = await batch(s, 'ws/multi/a', 3, 'a');
  const sb = await batch(s, 'ws/multi/b', 4, 'b');
  await until(() => ws.claims('a').length === 3 && ws.claims('b').length === 4, 10000, 'tagged claims');
  assert.deepEqual(ws.claims('a').map((f) => f.sequence), sa);
  assert.deepEqual(ws.claims('b').map((f) => f.sequence), sb);
  ws.send(JSON.stringify({ op: 'unsubscribe', id: 'a' }));
  await until(() => ws.frames.some((f) => f.type === 'unsubscribed' && f.id === 'a'), 10000, 'unsubscribed');
  await batch(s, 'ws/multi/a', 2, 'a2');
  const sb2 = await batch(s, 'ws/multi/b', 1, 'b2');
  await until(() => ws.claims('b').length === 5, 10000, 'b keeps going');
  assert.equal(ws.claims('a').length, 3);
  assert.equal(ws.claims('b')[4].sequence, sb2[0]);
  // Errors are frames, the socket stays open.
  ws.send('not json');
  ws.send(JSON.stringify({ op: 'subscribe', id: 'b' }));
  ws.send(JSON.stringify({ op: 'subscribe', id: 'c', concept_prefix: 'bad//path' }));
  await until(() => ws.frames.filter((f) => f.type === 'error').length >= 3, 10000, 'three errors');
  const errs = ws.frames.filter((f) => f.type === 'error');
  assert.equal(errs[0].code, 'INVALID_ARGUMENT');
  assert.match(errs[1].message, /already in use/);
  assert.equal(errs[2].id, 'c');
  assert.equal(errs[2].code, 'INVALID_ARGUMENT');
  assert.match(errs[2].message, /concept_prefix/);
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.close();
  await ws.closed;
});

test('resume from a sequence catches up in order', async () => {
  const seqs = await batch(s, 'ws/resume', 50);
  const ws = open(`${s.ws}?concept_prefix=ws/resume&start_sequence=${seqs[10]}`);
  await until(() => ws.claims().length >= 40, 10000, 'catch-up');
  assert.deepEqual(ws.claims().map((f) => f.sequence), seqs.slice(10));
  ws.close();
  await ws.closed;
});

test('votes, epochs and sources arrive as frames with the REST JSON', async () => {
  const scoped = open(`${s.ws}?concept_prefix=ws/rec&types=claim,vote,epoch`);
  const sources = open(`${s.ws}?types=source`);
  await until(() => scoped.frames.length >= 1 && sources.frames.length >= 1, 10000, 'progress');
  const c = await post(s, '/v1/assert', { concept_path: 'ws/rec/a', predicate: 'p', value: 'x' });
  const v = await post(s, '/v1/votes', { assertion_hash: c.hash, voter_id: 'bob', weight: -0.5 });
  const e = await post(s, '/v1/epochs', { concept_path: 'ws/rec', reason: 'reset' });
  const put = await fetch(`${s.base}/v1/sources`, { method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'lab://ws', name: 'WS lab', tier: 2 }) });
  assert.equal(put.status, 200);
  const src = await put.json();
  const events = (ws) => ws.frames.filter((f) => f.type !== 'progress');
  await until(() => events(scoped).length >= 3 && events(sources).length >= 1, 10000, 'record frames');
  assert.deepEqual(events(scoped).map((f) => [f.type, f.sequence]),
    [['claim', Number(c.sequence)], ['vote', Number(v.sequence)], ['epoch', Number(e.epoch.sequence)]]);
  const [, vf, ef] = events(scoped);
  assert.equal(vf.vote.assertion_hash, c.hash);
  assert.equal(vf.vote.voter_id, 'bob');
  assert.equal(vf.vote.weight, -0.5);
  assert.deepEqual(ef.epoch, e.epoch);
  const sf = events(sources)[0];
  assert.equal(sf.type, 'source');
  assert.deepEqual(sf.source, src.source);
  scoped.close();
  sources.close();
  await Promise.all([scoped.closed, sources.closed]);
});

test('a bad URL subscription closes with 4003', async () => {
  const ws = open(`${s.ws}?start_sequence=abc`);
  const { code, reason } = await ws.closed;
  assert.equal(code, 4003);
  assert.match(reason, /ended/);
  assert.match(ws.frames[0].message, /start_sequence/);
  const ws2 = open(`${s.ws}?concept_prefix=a//b`);
  const c2 = await ws2.closed;
  assert.equal(c2.code, 4003);
  assert.equal(ws2.frames[0].code, 'INVALID_ARGUMENT');
});

test('a WebSocket on another path is refused, naming /v1/watch', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${s.http}/v1/health`);
  ws.on('error', () => {}); /* terminate() below reports one */
  const res = await new Promise((resolve) => ws.on('unexpected-response', (_, r) => resolve(r)));
  assert.equal(res.statusCode, 404);
  let body = '';
  for await (const chunk of res) body += chunk;
  const err = JSON.parse(body).error;
  assert.equal(err.code, 'NOT_FOUND');
  assert.match(err.message, /\/v1\/watch/);
  ws.terminate();
});

test('closing sockets frees their server streams at once', async () => {
  const t = await stack(['--watch-max-per-connection', '3']);
  try {
    for (let i = 0; i < 12; i++) {
      const ws = open(`${t.ws}?start_sequence=0`);
      await until(() => ws.frames.length >= 1 || ws.readyState > 1, 10000, 'progress');
      assert.equal(ws.frames[0].type, 'progress', JSON.stringify(ws.frames[0]));
      ws.close();
      await ws.closed;
    }
  } finally {
    await stop(t);
  }
});

test('a slow consumer is closed with 4008 and the sequence to resume from', async () => {
  const t = await stack([], { STEMEDB_WS_MAX_QUEUE_FRAMES: '64', STEMEDB_WS_SLOW_MS: '300' });
  try {
    const ws = open(`${t.ws}?concept_prefix=slow&start_sequence=0`);
    await until(() => ws.frames.length >= 1, 10000, 'progress');
    ws._socket.pause(); // stop reading: TCP fills, then the gateway queue
    const written = [];
    // 40 batches of 400 KB (16 MB) exceed what loopback socket buffers can
    // absorb (a few MB each way), so the gateway's queue fills and it cuts
    // the socket; reading resumes soon enough for the close frame to arrive.
    for (let i = 0; i < 40 && ws.readyState === WebSocket.OPEN; i++) {
      written.push(...await batch(t, 'slow/x', 50, `r${i}-`, 8000));
    }
    ws._socket.resume();
    const { code, reason } = await ws.closed;
    assert.equal(code, 4008);
    const m = /resume default=(\d+)/.exec(reason);
    assert.ok(m, reason);
    const resume = Number(m[1]);
    const seen = ws.claims().map((f) => f.sequence);
    assert.equal(resume, seen.length ? seen[seen.length - 1] + 1 : written[0]);
    const ws2 = open(`${t.ws}?concept_prefix=slow&start_sequence=${resume}`);
    const rest = written.filter((q) => q >= resume);
    await until(() => ws2.claims().length >= rest.length, 20000, 'the rest');
    assert.deepEqual([...seen, ...ws2.claims().map((f) => f.sequence)], written);
    ws2.close();
    await ws2.closed;
  } finally {
    await stop(t);
  }
});

test('keepalive pings, and gateway shutdown closes with 1001 and resume points', async () => {
  const t = await stack([], { STEMEDB_WS_PING_INTERVAL_MS: '100' });
  let stopped = false;
  try {
    const ws = open(`${t.ws}?concept_prefix=ka`);
    await until(() => ws.frames.length >= 1, 10000, 'progress');
    const seqs = await batch(t, 'ka', 2);
    await until(() => ws.pings >= 2 && ws.claims().length === 2, 10000, 'pings');
    // Answered pings keep the socket open well past 3 intervals ...
    await sleep(800);
    assert.equal(ws.readyState, WebSocket.OPEN);
    // ... and a peer that stops answering is dropped.
    const mute = new WebSocket(`${t.ws}?concept_prefix=ka`, { autoPong: false });
    const muteClosed = new Promise((resolve) => mute.on('close', (code) => resolve(code)));
    assert.equal(await muteClosed, 1006);
    t.gateway.kill('SIGTERM');
    const { code, reason } = await ws.closed;
    assert.equal(code, 1001);
    assert.match(reason, new RegExp(`resume default=${seqs[1] + 1}`));
    stopped = true;
  } finally {
    if (stopped) await new Promise((r) => (t.gateway.exitCode !== null ? r() : t.gateway.on('exit', r)));
    await stop(t);
  }
});

test('1000 subscribers on one gateway each get every event', async () => {
  const n = 1000;
  const socks = [];
  for (let i = 0; i < n; i++) socks.push(open(`${s.ws}?concept_prefix=many&start_sequence=0`));
  await until(() => socks.every((w) => w.frames.length >= 1), 60000, 'all subscribed');
  const seqs = await batch(s, 'many/x', 20);
  await until(() => socks.every((w) => w.claims().length >= 20), 60000, 'all delivered');
  for (const w of socks) assert.deepEqual(w.claims().map((f) => f.sequence), seqs);
  for (const w of socks) w.close();
  await Promise.all(socks.map((w) => w.closed));
});
