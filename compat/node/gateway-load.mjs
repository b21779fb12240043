// Load and state checks through the official @hyperledger/fabric-gateway client.
//
//   node gateway-load.mjs load ENDPOINT TLS_CA CERT KEY MSPID COUNT CONCURRENCY PREFIX
//     Submits COUNT CreateAsset transactions (ids PREFIX-n), CONCURRENCY at a
//     time; prints the ids whose commit status was VALID, the failures, and
//     the committed transactions per second.
//   node gateway-load.mjs state ENDPOINT TLS_CA CERT KEY MSPID
//     Prints the SHA-256 of GetAllAssets as evaluated on that peer, and the ids.
import { createHash } from 'node:crypto';
import { gatewayFor, grpcClient } from './gateway-common.mjs';

const [command, endpoint, tlsCa, certPath, keyPath, mspId, ...rest] = process.argv.slice(2);
const client = grpcClient(endpoint, tlsCa);
const gateway = gatewayFor(client, mspId, certPath, keyPath);
const contract = gateway.getNetwork('mychannel').getContract('basic');

try {
    if (command === 'load') {
        const [count, concurrency, prefix] = [Number(rest[0]), Number(rest[1]), rest[2]];
        const acked = [];
        const failures = {};
        let next = 0;
        const started = Date.now();
        async function worker() {
            while (next < count) {
                const id = `${prefix}-${next++}`;
                try {
                    const commit = await contract.submitAsync('CreateAsset', { arguments: [id, 'blue', '5', 'Tomoko', '300'] });
                    const status = await commit.getStatus();
                    if (status.successful) {
                        acked.push(id);
                    } else {
                        failures[`code ${status.code}`] = (failures[`code ${status.code}`] ?? 0) + 1;
                    }
                } catch (error) {
                    const key = String(error?.message ?? error).slice(0, 120);
                    failures[key] = (failures[key] ?? 0) + 1;
                }
            }
        }
        await Promise.all(Array.from({ length: concurrency }, worker));
        const seconds = (Date.now() - started) / 1000;
        console.log(JSON.stringify({ acked, failures, seconds, tps: acked.length / seconds }));
    } else if (command === 'state') {
        const all = await contract.evaluateTransaction('GetAllAssets');
        const ids = JSON.parse(new TextDecoder().decode(all)).map((a) => a.ID);
        console.log(JSON.stringify({ sha256: createHash('sha256').update(all).digest('hex'), ids }));
    } else {
        console.error('usage: gateway-load.mjs load|state ...');
        process.exitCode = 2;
    }
} finally {
    gateway.close();
    client.close();
}
