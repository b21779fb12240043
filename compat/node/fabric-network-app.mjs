// The legacy Fabric SDK, fabric-network 2.2, as an application of the
// Fabric 2.x era uses it: a connection profile, a wallet identity, service
// discovery (asLocalhost), submit, evaluate and a contract event listener.
//
//   node fabric-network-app.mjs <connection-profile.json> <cert.pem> <key.pem> <msp-id> <channel> <chaincode> <asset-id>
//
// Prints one JSON object.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const { Gateway, Wallets } = require('fabric-network');

const [profilePath, certPath, keyPath, mspId, channelName, chaincode, assetId] = process.argv.slice(2);

async function main() {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8'));
  const wallet = await Wallets.newInMemoryWallet();
  await wallet.put('app', {
    credentials: { certificate: readFileSync(certPath, 'utf8'), privateKey: readFileSync(keyPath, 'utf8') },
    mspId,
    type: 'X.509',
  });
  const gateway = new Gateway();
  const out = {};
  try {
    await gateway.connect(profile, {
      wallet,
      identity: 'app',
      discovery: { enabled: true, asLocalhost: true },
      eventHandlerOptions: { commitTimeout: 30, endorseTimeout: 30 },
    });
    const network = await gateway.getNetwork(channelName);
    const contract = network.getContract(chaincode);

    const events = [];
    let resolveEvent;
    const transferred = new Promise((resolve) => { resolveEvent = resolve; });
    await contract.addContractListener(async (event) => {
      const payload = event.payload ? event.payload.toString() : '';
      events.push({ name: event.eventName, txId: event.getTransactionEvent().transactionId, payload });
      if (event.eventName === 'TransferAsset') resolveEvent();
    });

    const created = contract.createTransaction('CreateAsset');
    out.createResult = (await created.submit(assetId, 'blue', '5', 'Tomoko', '300')).toString();
    out.createTxId = created.getTransactionId();
    out.read = JSON.parse((await contract.evaluateTransaction('ReadAsset', assetId)).toString());
    out.transferResult = (await contract.submitTransaction('TransferAsset', assetId, 'Brad')).toString();
    out.readAfterTransfer = JSON.parse((await contract.evaluateTransaction('ReadAsset', assetId)).toString());
    await Promise.race([transferred, new Promise((_, reject) => setTimeout(() => reject(new Error('no TransferAsset event within 20 s')), 20000))]);
    out.events = events;
    try {
      await contract.evaluateTransaction('ReadAsset', `${assetId}-missing`);
      out.missing = 'no error';
    } catch (e) {
      out.missing = String(e.message ?? e);
    }
    const discovered = network.getChannel().getEndorsers().map((e) => `${e.mspid}@${e.endpoint?.url ?? e.name}`).sort();
    out.endorsers = discovered;
  } finally {
    gateway.disconnect();
  }
  return out;
}

main().then((out) => console.log(JSON.stringify(out))).catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
