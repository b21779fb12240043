// Private data through the official @hyperledger/fabric-gateway client:
// one action per run, one JSON line of output.
//
//   node gateway-private.mjs ENDPOINT TLS_CA CERT KEY MSPID CHAINCODE ACTION ARGS...
//   ACTION put COLLECTION ID VALUE   submit PutPrivate with VALUE as transient data
//          get COLLECTION ID         evaluate GetPrivate
//          hash COLLECTION ID        evaluate GetPrivateHash
//          block NUMBER              one block-and-private-data event: the
//                                    collections of each transaction's private data
import { attempt, gatewayFor, grpcClient } from './gateway-common.mjs';

const [endpoint, tlsCa, certPath, keyPath, mspId, chaincode, action, ...args] = process.argv.slice(2);
const utf8 = new TextDecoder();
setTimeout(() => {
    console.log(JSON.stringify({ error: { message: 'timed out after 60 s' } }));
    process.exit(1);
}, 60000).unref();

const client = grpcClient(endpoint, tlsCa);
const gateway = gatewayFor(client, mspId, certPath, keyPath);

async function blockWithPrivateData(network, number) {
    const events = await network.getBlockAndPrivateDataEvents({ startBlock: BigInt(number) });
    try {
        for await (const event of events) {
            const transactions = [];
            event.getPrivateDataMapMap().forEach((set, tx) => {
                transactions.push({
                    tx: Number(tx),
                    namespaces: set.getNsPvtRwsetList().map((ns) => ({
                        namespace: ns.getNamespace(),
                        collections: ns.getCollectionPvtRwsetList().map((c) => c.getCollectionName()),
                    })),
                });
            });
            return { number: Number(event.getBlock().getHeader().getNumber()), transactions };
        }
    } finally {
        events.close();
    }
}

let result;
try {
    const network = gateway.getNetwork('mychannel');
    const contract = network.getContract(chaincode);
    switch (action) {
        case 'put': {
            const [collection, id, value] = args;
            result = await attempt(async () => {
                const submitted = await contract.submitAsync('PutPrivate', {
                    arguments: [collection, id],
                    transientData: { value: Buffer.from(value) },
                });
                const status = await submitted.getStatus();
                return { txId: submitted.getTransactionId(), code: status.code, block: Number(status.blockNumber) };
            });
            break;
        }
        case 'get':
            result = await attempt(async () => utf8.decode(await contract.evaluateTransaction('GetPrivate', ...args)));
            break;
        case 'hash':
            result = await attempt(async () => utf8.decode(await contract.evaluateTransaction('GetPrivateHash', ...args)));
            break;
        case 'block':
            result = await attempt(() => blockWithPrivateData(network, args[0]));
            break;
        default:
            result = { error: { message: `unknown action ${action}` } };
    }
} finally {
    gateway.close();
    client.close();
}
console.log(JSON.stringify(result));
