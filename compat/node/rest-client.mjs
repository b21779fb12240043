// Drives weft's REST gateway with a real HTTP client (Node's fetch), as an
// application in any language would. Prints one JSON object.
//
//   node rest-client.mjs all <base-url> <org1-key> <org2-key> <revoked-key> <org1-only-channel>
//   node rest-client.mjs busy <base-url> <key>
//   node rest-client.mjs call <base-url> <key> <method> <path> [<json body>]
import { setTimeout as sleep } from 'node:timers/promises';

const [mode, base, ...rest] = process.argv.slice(2);

async function call(method, path, { key, body, raw, headers = {} } = {}) {
  const response = await fetch(base + path, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: response.status, body: json, text: json ? undefined : text, requestId: response.headers.get('x-request-id') };
}

// Reads Server-Sent Events until `count` have arrived.
async function events(path, key, count, headers = {}) {
  const controller = new AbortController();
  const response = await fetch(base + path, { headers: { authorization: `Bearer ${key}`, ...headers }, signal: controller.signal });
  const out = { status: response.status, contentType: response.headers.get('content-type'), events: [] };
  if (response.status !== 200) {
    out.body = await response.json();
    return out;
  }
  const decoder = new TextDecoder();
  let buffer = '';
  const deadline = setTimeout(() => controller.abort(), 20000);
  try {
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = {};
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          event[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
        }
        if (event.data) {
          out.events.push({ id: event.id, event: event.event, data: JSON.parse(event.data) });
        }
        if (out.events.length >= count) {
          controller.abort();
          return out;
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(deadline);
  }
  return out;
}

async function all([key1, key2, revoked, org1Only]) {
  const tx = (channel, chaincode) => `/api/v1/channels/${channel}/chaincodes/${chaincode}/transactions`;
  const q = (channel, chaincode) => `/api/v1/channels/${channel}/chaincodes/${chaincode}/query`;
  const out = {};
  out.openapi = await call('GET', '/api/v1/openapi.json');
  out.created = await call('POST', tx('mychannel', 'basic'), { key: key1, body: { function: 'CreateAsset', args: ['r1', 'blue', '5', 'Tom', '100'] }, headers: { 'x-request-id': 'req-created' } });
  out.queried = await call('POST', q('mychannel', 'basic'), { key: key2, body: { function: 'ReadAsset', args: ['r1'] } });
  out.accepted = await call('POST', tx('mychannel', 'basic') + '?async=true', { key: key1, body: { function: 'CreateAsset', args: ['r2', 'red', '1', 'Ann', '1'] } });
  for (let i = 0; i < 100; i += 1) {
    out.asyncStatus = await call('GET', `/api/v1/channels/mychannel/transactions/${out.accepted.body.txId}`, { key: key1 });
    if (out.asyncStatus.body?.status !== 'PENDING') break;
    await sleep(100);
  }
  out.status = await call('GET', `/api/v1/channels/mychannel/transactions/${out.created.body.txId}`, { key: key2 });
  out.unknownTx = await call('GET', `/api/v1/channels/mychannel/transactions/${'0'.repeat(64)}`, { key: key1 });
  // Three more writes, for the event stream.
  for (const id of ['r3', 'r4', 'r5']) {
    out[id] = await call('POST', tx('mychannel', 'basic'), { key: key1, body: { function: 'CreateAsset', args: [id, 'green', '2', 'Jo', '3'] } });
  }

  // Every error class.
  out.noKey = await call('POST', q('mychannel', 'basic'), { body: { function: 'ReadAsset', args: ['r1'] } });
  out.wrongKey = await call('POST', q('mychannel', 'basic'), { key: key1 + 'x', body: { function: 'ReadAsset', args: ['r1'] } });
  out.revokedKey = await call('POST', q('mychannel', 'basic'), { key: revoked, body: { function: 'ReadAsset', args: ['r1'] } });
  out.notJoined = await call('POST', q(org1Only, 'basic'), { key: key2, body: { function: 'ReadAsset', args: ['r1'] } });
  out.notJson = await call('POST', q('mychannel', 'basic'), { key: key1, raw: '{"function": ' });
  out.badArg = await call('POST', q('mychannel', 'basic'), { key: key1, body: { function: 'ReadAsset', args: ['r1', 7] } });
  out.unknownField = await call('POST', q('mychannel', 'basic'), { key: key1, body: { function: 'ReadAsset', argz: [] } });
  out.noFunction = await call('POST', tx('mychannel', 'basic'), { key: key1, body: { args: [] } });
  out.chaincodeError = await call('POST', q('mychannel', 'basic'), { key: key1, body: { function: 'ReadAsset', args: ['missing'] } });
  out.chaincodeSubmitError = await call('POST', tx('mychannel', 'basic'), { key: key1, body: { function: 'CreateAsset', args: ['r1', 'blue', '5', 'Tom', '100'] } });
  out.tooLarge = await call('POST', q('mychannel', 'basic'), { key: key1, body: { function: 'ReadAsset', args: ['x'.repeat(2 * 1024 * 1024)] } });
  out.badChannel = await call('POST', q('My Channel', 'basic'), { key: key1, body: { function: 'ReadAsset', args: ['r1'] } });
  out.badAsync = await call('POST', tx('mychannel', 'basic') + '?async=maybe', { key: key1, body: { function: 'ReadAsset', args: [] } });
  out.noSuchEndpoint = await call('GET', '/api/v1/nothing', { key: key1 });

  // Events in order, then resumed after an event id.
  out.events = await events('/api/v1/channels/mychannel/events?chaincode=basic&since=0', key1, 5);
  const second = out.events.events[1]?.id;
  out.resumedSince = await events(`/api/v1/channels/mychannel/events?chaincode=basic&since=${second}`, key1, 1);
  out.resumedLastEventId = await events('/api/v1/channels/mychannel/events?chaincode=basic', key1, 1, { 'last-event-id': second });
  out.eventsNoChaincode = await events('/api/v1/channels/mychannel/events', key1, 1);
  return out;
}

// Many submits at once against a gateway allowing one in flight.
async function busy([key]) {
  const requests = Array.from({ length: 6 }, (_, i) => call('POST', `/api/v1/channels/mychannel/chaincodes/basic/transactions`, {
    key, body: { function: 'CreateAsset', args: [`busy${i}`, 'blue', '1', 'B', '1'] },
  }));
  const answers = await Promise.all(requests);
  return { statuses: answers.map((a) => a.status), codes: answers.map((a) => a.body?.error?.code ?? null) };
}

async function one([key, method, path, body]) {
  return call(method, path, { key, body: body ? JSON.parse(body) : undefined });
}

const modes = { all, busy, call: one };
modes[mode](rest).then((out) => console.log(JSON.stringify(out))).catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
