// Integration test of stemedb-server from Node's @grpc/grpc-js, loading the
// .proto files directly with @grpc/proto-loader (no generated code).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const build = process.env.STM_BUILD_DIR || path.join(root, 'build');
const serverBin = process.env.STM_SERVER_BIN || path.join(build, 'service', 'stemedb-server');

const def = protoLoader.loadSync(
  ['stemedb/v1/stemedb.proto', 'grpc/health/v1/health.proto'],
  { includeDirs: [path.join(root, 'proto')], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const loaded = grpc.loadPackageDefinition(def);
const { StemeDB } = loaded.stemedb.v1;
const { Health } = loaded.grpc.health.v1;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

const call = (client, method, req) => new Promise((resolve, reject) => {
  client[method](req, { deadline: Date.now() + 10000 }, (err, res) => (err ? reject(err) : resolve(res)));
});

let proc, dataDir, client, health, addr;

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'stm-node-'));
  addr = `127.0.0.1:${await freePort()}`;
  proc = spawn(serverBin, ['--data-dir', dataDir, '--grpc-listen', addr, '--node-id', 'node-test'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  client = new StemeDB(addr, grpc.credentials.createInsecure());
  health = new Health(addr, grpc.credentials.createInsecure());
  // Readiness: poll the standard health check until SERVING.
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await call(health, 'Check', { service: '' });
      if (r.status === 'SERVING') break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
});

after(async () => {
  client.close();
  health.close();
  const code = await new Promise((resolve) => { proc.on('exit', resolve); proc.kill('SIGTERM'); });
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(code, 0, 'server exits 0 on SIGTERM');
});

test('assert, get and query round-trip through grpc-js', async () => {
  const a = await call(client, 'Assert', {
    concept_path: 'node/drug', predicate: 'dose', value: { number_value: 2.5 },
    source_id: 'fda://label', confidence: 0.9, timestamp_ns: '1700000000000000000' });
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.equal(a.created, true);
  const again = await call(client, 'Assert', {
    concept_path: 'node/drug', predicate: 'dose', value: { number_value: 2.5 },
    source_id: 'fda://label', confidence: 0.9, timestamp_ns: '1700000000000000000' });
  assert.equal(again.created, false);
  assert.equal(again.hash, a.hash);
  const got = await call(client, 'Get', { hash: a.hash });
  assert.equal(got.value.number_value, 2.5);
  assert.equal(got.source_id, 'fda://label');
  assert.equal(got.source_tier, 0);
  assert.equal(got.timestamp_ns, '1700000000000000000');
  const later = await call(client, 'Assert', {
    concept_path: 'node/drug', predicate: 'dose', value: { string_value: '3 mg' },
    timestamp_ns: '1800000000000000000' });
  const q = await call(client, 'Query', { concept_path: 'node/drug', lens: 'recency' });
  assert.equal(q.results.length, 1);
  assert.equal(q.results[0].winner.hash, later.hash);
  assert.equal(q.results[0].candidates_count, 2);
});

test('errors carry the right status and name the field', async () => {
  await assert.rejects(call(client, 'Assert', { concept_path: '', predicate: 'p', value: { bool_value: true } }),
    (e) => e.code === grpc.status.INVALID_ARGUMENT && /concept_path/.test(e.details));
  await assert.rejects(call(client, 'Query', { concept_path: 'a', lens: 'nope' }),
    (e) => e.code === grpc.status.INVALID_ARGUMENT && /lens/.test(e.details));
  await assert.rejects(call(client, 'Get', { hash: 'f'.repeat(64) }),
    (e) => e.code === grpc.status.NOT_FOUND);
});

test('status reports the node', async () => {
  const s = await call(client, 'Status', {});
  assert.equal(s.status, 'healthy');
  assert.equal(s.node_id, 'node-test');
  assert.ok(Number(s.assertion_count) >= 2);
});

// Watch through grpc-js: a server stream with progress, claims and a vote,
// then a resume from a sequence that replays exactly the same events.
test('watch streams claims and votes and resumes from a sequence', async () => {
  // `ready` resolves on the first progress event: the watch is live.
  const events = (req, n) => {
    let ready;
    const isReady = new Promise((r) => { ready = r; });
    const done = new Promise((resolve, reject) => {
      const got = [];
      const stream = client.Watch(req, { deadline: Date.now() + 20000 });
      stream.on('data', (ev) => {
        if (ev.type === 'EVENT_TYPE_PROGRESS') { ready(); return; }
        got.push(ev);
        if (got.length === n) { stream.cancel(); resolve(got); }
      });
      stream.on('error', (e) => { if (e.code !== grpc.status.CANCELLED) reject(e); });
    });
    return { isReady, done };
  };
  const live = events({ concept_prefix: 'node/watch', start_sequence: '0' }, 3);
  await live.isReady;
  const a = await call(client, 'Assert', { concept_path: 'node/watch/a', predicate: 'p', value: { string_value: 'x' } });
  const v = await call(client, 'Vote', { assertion_hash: a.hash, voter_id: 'node', weight: 1 });
  const b = await call(client, 'Assert', { concept_path: 'node/watch', predicate: 'q', value: { bool_value: true } });
  await call(client, 'Assert', { concept_path: 'node/elsewhere', predicate: 'p', value: { bool_value: true } });
  const got = await live.done;
  assert.deepEqual(got.map((e) => [e.type, e.sequence]),
    [['EVENT_TYPE_CLAIM', a.sequence], ['EVENT_TYPE_VOTE', v.sequence], ['EVENT_TYPE_CLAIM', b.sequence]]);
  assert.equal(got[0].claim.hash, a.hash);
  assert.equal(got[1].vote.assertion_hash, a.hash);
  const again = await events({ concept_prefix: 'node/watch', start_sequence: a.sequence }, 3).done;
  assert.deepEqual(again.map((e) => e.sequence), got.map((e) => e.sequence));
});
