// A Fabric application written against the official @hyperledger/fabric-gateway
// client, run unchanged against a weft peer. It drives the asset-transfer
// `basic` chaincode and prints one JSON report of what it observed.
//
//   node gateway-app.mjs ENDPOINT TLS_CA CERT KEY MSPID CHAINCODE [noevents]
// `noevents` skips the chaincode-event checks (for shims that never send events).
import { checkpointers } from '@hyperledger/fabric-gateway';
import { attempt, describe, gatewayFor, grpcClient } from './gateway-common.mjs';

const [endpoint, tlsCa, certPath, keyPath, mspId, chaincode, mode] = process.argv.slice(2);
const withEvents = mode !== 'noevents';
const utf8 = new TextDecoder();
const report = {};
// Event streams have no deadline: never hang a test run.
setTimeout(() => {
    report.unexpected = { message: 'timed out after 90 s', reached: Object.keys(report) };
    console.log(JSON.stringify(report));
    process.exit(1);
}, 90000).unref();

const client = grpcClient(endpoint, tlsCa);
const gateway = gatewayFor(client, mspId, certPath, keyPath);

async function take(iterable, count) {
    const seen = [];
    for await (const item of iterable) {
        seen.push(item);
        if (seen.length >= count) break;
    }
    return seen;
}

try {
    const network = gateway.getNetwork('mychannel');
    const contract = network.getContract(chaincode);
    const id = `asset-${process.pid}-${Date.now()}`;

    // Evaluate of a missing asset: the chaincode answers 500, which must be an error.
    report.missing = await attempt(() => contract.evaluateTransaction('ReadAsset', id));

    // submit = endorse → sign → submit → commit status.
    const created = await contract.submitTransaction('CreateAsset', id, 'blue', '5', 'Tomoko', '300');
    report.createResult = utf8.decode(created);
    report.read = JSON.parse(utf8.decode(await contract.evaluateTransaction('ReadAsset', id)));

    // submitAsync + getStatus.
    const commit = await contract.submitAsync('TransferAsset', { arguments: [id, 'Brad'] });
    report.transferResult = utf8.decode(commit.getResult());
    const status = await commit.getStatus();
    report.transferStatus = {
        code: status.code,
        successful: status.successful,
        blockNumber: Number(status.blockNumber),
        transactionId: status.transactionId,
    };
    report.transferTxId = commit.getTransactionId();
    report.readAfterTransfer = JSON.parse(utf8.decode(await contract.evaluateTransaction('ReadAsset', id)));

    // A failing submit: endorsement fails with the chaincode's message.
    report.duplicateCreate = await attempt(() =>
        contract.submitTransaction('CreateAsset', id, 'blue', '5', 'Tomoko', '300'),
    );

    // A third write, so the events have something to resume to.
    const update = await contract.submitAsync('UpdateAsset', { arguments: [id, 'red', '7', 'Brad', '500'] });
    const updateStatus = await update.getStatus();
    report.updateStatus = { code: updateStatus.code, blockNumber: Number(updateStatus.blockNumber) };

    // Chaincode events from the block of the transfer, then resume from a checkpoint.
    const start = BigInt(report.transferStatus.blockNumber);
    report.updateTxId = update.getTransactionId();
    if (withEvents) {
    const events = await network.getChaincodeEvents(chaincode, { startBlock: start });
    const first = await take(events, 1);
    events.close();
    report.firstEvent = first.map((e) => ({
        name: e.eventName,
        txId: e.transactionId,
        block: Number(e.blockNumber),
        payload: JSON.parse(utf8.decode(e.payload)),
    }))[0];
    const checkpointer = checkpointers.inMemory();
    await checkpointer.checkpointChaincodeEvent(first[0]);
    const resumed = await network.getChaincodeEvents(chaincode, { checkpoint: checkpointer, startBlock: 0n });
    const next = await take(resumed, 1);
    resumed.close();
    report.resumedEvent = next.map((e) => ({ name: e.eventName, txId: e.transactionId, block: Number(e.blockNumber) }))[0];
    }

    // Block events and filtered block events from the transfer's block.
    const blocks = await network.getBlockEvents({ startBlock: start });
    const [block] = await take(blocks, 1);
    blocks.close();
    report.block = {
        number: Number(block.getHeader().getNumber()),
        transactions: block.getData().getDataList().length,
    };
    const filtered = await network.getFilteredBlockEvents({ startBlock: start });
    const [filteredBlock] = await take(filtered, 1);
    filtered.close();
    report.filteredBlock = {
        number: Number(filteredBlock.getNumber()),
        channel: filteredBlock.getChannelId(),
        transactions: filteredBlock.getFilteredTransactionsList().map((t) => ({
            txId: t.getTxid(),
            code: t.getTxValidationCode(),
        })),
    };

    // Wrong channel and unknown chaincode.
    report.wrongChannel = await attempt(() =>
        gateway.getNetwork('nosuchchannel').getContract(chaincode).evaluateTransaction('ReadAsset', id),
    );
    report.unknownChaincode = await attempt(() => network.getContract('nosuchcc').submitTransaction('Anything'));
} catch (error) {
    report.unexpected = describe(error);
} finally {
    gateway.close();
    client.close();
}
console.log(JSON.stringify(report));
