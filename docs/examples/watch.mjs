// A resumable change-feed client for GET /v1/watch (api/watch.md), with the
// `ws` package from npm. It prints one line per event and, whenever the
// socket closes (gateway restart, slow consumer, network), reconnects from
// the last sequence it saw + 1, so it never misses or repeats an event.
//
//   node watch.mjs ws://127.0.0.1:18180/v1/watch drug [start_sequence]
import WebSocket from 'ws';

const [url = 'ws://127.0.0.1:18180/v1/watch', prefix = '', start = '0'] =
  process.argv.slice(2);
let next = Number(start); // the first sequence we still need (0: from now)

function connect() {
  const q = new URLSearchParams({ concept_prefix: prefix, start_sequence: String(next) });
  const ws = new WebSocket(`${url}?${q}`);
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString());
    if (f.type === 'claim') {
      console.log(`#${f.sequence} ${f.claim.concept_path} ${f.claim.predicate} = ${JSON.stringify(f.claim.value)}`);
      next = f.sequence + 1;
    } else if (f.type === 'vote' || f.type === 'epoch' || f.type === 'source') {
      console.log(`#${f.sequence} ${f.type} ${JSON.stringify(f[f.type])}`);
      next = f.sequence + 1;
    } else if (f.type === 'progress') {
      console.log(`(up to date at #${f.sequence})`);
      next = f.sequence + 1;
    } else if (f.type === 'error') {
      console.log(`error ${f.code}: ${f.message}`);
    }
  });
  ws.on('close', (code, reason) => {
    console.log(`closed ${code} ${reason}; resuming from #${next}`);
    if (code === 4003 || code === 4011) process.exit(1); // bad request / pruned
    setTimeout(connect, 500);
  });
  ws.on('error', () => {}); // 'close' follows
}
connect();
