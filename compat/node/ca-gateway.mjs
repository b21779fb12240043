// An application on a network whose identities come from Fabric CAs: it
// registers and enrols a user of its own with the official npm
// fabric-ca-client, then uses it at once through @hyperledger/fabric-gateway.
//
//   node ca-gateway.mjs enrol  <ca-url> <ca-root.pem> <ca-name> <out-dir>
//   node ca-gateway.mjs use    <peer-endpoint> <peer-tls-ca> <msp-id> <out-dir> <channel> <chaincode>
//   node ca-gateway.mjs revoke <ca-url> <ca-root.pem> <ca-name> <out-dir>
//
// Prints one JSON object.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attempt, gatewayFor, grpcClient } from './gateway-common.mjs';

const require = createRequire(import.meta.url);
const FabricCAServices = require('fabric-ca-client');
const { User } = require('fabric-common');

const [action, ...args] = process.argv.slice(2);

async function registrar(ca) {
  const enrollment = await ca.enroll({ enrollmentID: 'admin', enrollmentSecret: 'adminpw' });
  const admin = new User('admin');
  await admin.setEnrollment(enrollment.key, enrollment.certificate, 'unused');
  return admin;
}

async function enrol([url, root, caName, out]) {
  const ca = new FabricCAServices(url, { trustedRoots: [readFileSync(root)], verify: true }, caName);
  const admin = await registrar(ca);
  const secret = await ca.register({
    enrollmentID: 'appuser', affiliation: 'org1.department1', role: 'client',
    attrs: [{ name: 'app.role', value: 'auditor', ecert: false }],
  }, admin);
  const enrollment = await ca.enroll({
    enrollmentID: 'appuser', enrollmentSecret: secret, attr_reqs: [{ name: 'app.role', optional: false }],
  });
  writeFileSync(join(out, 'cert.pem'), enrollment.certificate);
  writeFileSync(join(out, 'key.pem'), enrollment.key.toBytes());
  const identities = (await ca.newIdentityService().getAll(admin)).result.identities.map((i) => `${i.id}:${i.type}`).sort();
  return { identities };
}

async function use([endpoint, tlsCa, mspId, out, channel, chaincode]) {
  const client = grpcClient(endpoint, tlsCa);
  const gateway = gatewayFor(client, mspId, join(out, 'cert.pem'), join(out, 'key.pem'));
  try {
    const contract = gateway.getNetwork(channel).getContract(chaincode);
    const utf8 = (bytes) => Buffer.from(bytes).toString();
    const submitted = await attempt(async () => utf8(await contract.submitTransaction('ClientAttribute', 'app.role')));
    const evaluated = await attempt(async () => utf8(await contract.evaluateTransaction('ClientAttribute', 'app.role')));
    return { submitted, evaluated };
  } finally {
    gateway.close();
    client.close();
  }
}

async function revoke([url, root, caName, out]) {
  const ca = new FabricCAServices(url, { trustedRoots: [readFileSync(root)], verify: true }, caName);
  const admin = await registrar(ca);
  const result = await ca.revoke({ enrollmentID: 'appuser', reason: 'keycompromise', gencrl: true }, admin);
  const crl = Buffer.from(result.result.CRL, 'base64').toString();
  writeFileSync(join(out, 'crl.pem'), crl);
  return { revoked: result.result.RevokedCerts };
}

const actions = { enrol, use, revoke };
actions[action](args).then((result) => console.log(JSON.stringify(result))).catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
