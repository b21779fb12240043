// A load on weft's REST gateway: <workers> requests in flight for
// <seconds>, each submitting CreateAsset with a fresh id (or evaluating
// ReadAsset with `query`). Prints throughput and latency percentiles.
//
//   node rest-load.mjs <base-url> <key> <submit|query> <workers> <seconds>
const [base, key, mode, workersArg, secondsArg] = process.argv.slice(2);
const workers = Number(workersArg);
const seconds = Number(secondsArg);
const path = mode === 'query'
  ? '/api/v1/channels/mychannel/chaincodes/basic/query'
  : '/api/v1/channels/mychannel/chaincodes/basic/transactions';
const latencies = [];
let errors = 0;
let counter = 0;
const prefix = `load${Date.now()}`;
const end = Date.now() + seconds * 1000;

async function worker() {
  while (Date.now() < end) {
    counter += 1;
    const id = `${prefix}-${counter}`;
    const body = mode === 'query'
      ? { function: 'ReadAsset', args: ['asset-query'] }
      : { function: 'CreateAsset', args: [id, 'blue', '5', 'Tom', '100'] };
    const started = performance.now();
    const response = await fetch(base + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await response.arrayBuffer();
    if (response.status === 200) latencies.push(performance.now() - started);
    else errors += 1;
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: workers }, worker));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]?.toFixed(1);
console.log(JSON.stringify({
  mode, workers, seconds: elapsed.toFixed(1), ok: latencies.length, errors,
  perSecond: (latencies.length / elapsed).toFixed(0), p50ms: at(0.5), p99ms: at(0.99),
}));
