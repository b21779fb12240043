// Misbehaving clients and chaincode against a weft peer, through the official
// @hyperledger/fabric-gateway client; prints one JSON report.
//
//   node gateway-negative.mjs ENDPOINT TLS_CA CERT KEY MSPID OTHER_KEY
// OTHER_KEY is a private key that does not belong to CERT (a forged signer).
import { attempt, describe, gatewayFor, grpcClient } from './gateway-common.mjs';

const [endpoint, tlsCa, certPath, keyPath, mspId, otherKeyPath] = process.argv.slice(2);
const utf8 = new TextDecoder();
const report = {};

const client = grpcClient(endpoint, tlsCa);
const gateway = gatewayFor(client, mspId, certPath, keyPath);
const forged = gatewayFor(client, mspId, certPath, otherKeyPath);

try {
    const contract = gateway.getNetwork('mychannel').getContract('basic');
    const id = `neg-${process.pid}-${Date.now()}`;
    await contract.submitTransaction('CreateAsset', id, 'blue', '5', 'Tomoko', '300');

    // A signature that does not match the certificate.
    report.badSignature = await attempt(() =>
        forged.getNetwork('mychannel').getContract('basic').evaluateTransaction('ReadAsset', id),
    );

    // Two concurrent updates of one key, both endorsed before either commits:
    // exactly one is VALID, the other MVCC_READ_CONFLICT (11).
    const first = await contract.newProposal('UpdateAsset', { arguments: [id, 'red', '6', 'Ann', '400'] }).endorse();
    const second = await contract.newProposal('UpdateAsset', { arguments: [id, 'green', '7', 'Bob', '500'] }).endorse();
    const [c1, c2] = await Promise.all([first.submit(), second.submit()]);
    const [s1, s2] = await Promise.all([c1.getStatus(), c2.getStatus()]);
    report.mvcc = [s1.code, s2.code].sort((a, b) => a - b);
    report.afterConflict = JSON.parse(utf8.decode(await contract.evaluateTransaction('ReadAsset', id)));
    report.winner = s1.code === 0 ? 'first' : 'second';

    // The same signed proposal again after it committed: a replay.
    const proposal = contract.newProposal('TransferAsset', { arguments: [id, 'Carol'] });
    const once = await (await (await proposal.endorse()).submit()).getStatus();
    report.replayFirst = once.code;
    report.replay = await attempt(() => proposal.endorse());

    // The chaincode process dies in the middle of a transaction.
    report.crash = await attempt(() => contract.submitTransaction('CrashMidTransaction', `${id}-crash`));
    // The peer starts the chaincode again for the next transaction; nothing of the crashed one was written.
    report.afterCrash = await attempt(async () => utf8.decode(await contract.evaluateTransaction('AssetExists', `${id}-crash`)));
    report.readAfterCrash = await attempt(async () => JSON.parse(utf8.decode(await contract.evaluateTransaction('ReadAsset', id))).Owner);
    // Chaincode-to-chaincode call, history and rich query through the shim.
    report.readThrough = await attempt(async () => JSON.parse(utf8.decode(await gateway.getNetwork('mychannel').getContract('other').evaluateTransaction('ReadThrough', 'basic', id))).Owner);
    report.history = await attempt(async () => JSON.parse(utf8.decode(await contract.evaluateTransaction('GetAssetHistory', id))).length);
    report.byOwner = await attempt(async () => JSON.parse(utf8.decode(await contract.evaluateTransaction('QueryByOwner', 'Carol'))));
    report.id = id;
} catch (error) {
    report.unexpected = describe(error);
} finally {
    gateway.close();
    forged.close();
    client.close();
}
console.log(JSON.stringify(report));
