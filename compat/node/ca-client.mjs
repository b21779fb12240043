// Drives a Fabric CA server with the official npm fabric-ca-client, as an
// application would: node ca-client.mjs <flow|burst> <url> <ca-root.pem> <ca-name> [count]
//
// flow: enrol, register, attributes, reenrol, revoke, CRLs, the identity,
// affiliation and certificate services, and the refusals Fabric CA's clients
// see; prints one JSON object.
// burst: enrols one identity <count> times, 8 at a time, printing each
// acknowledged certificate's serial as soon as it arrives.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';

const require = createRequire(import.meta.url);
const FabricCAServices = require('fabric-ca-client');
const { User } = require('fabric-common');

const [mode, url, rootPath, caName, countArg] = process.argv.slice(2);
const ca = new FabricCAServices(url, { trustedRoots: [readFileSync(rootPath)], verify: true }, caName);

async function user(name, enrollment) {
  const u = new User(name);
  await u.setEnrollment(enrollment.key, enrollment.certificate, 'Org1MSP');
  return u;
}

function serial(pem) {
  return new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, '');
}

// A request without any client library: status and JSON body.
function raw(method, path) {
  return new Promise((resolve, reject) => {
    const request = https.request(url + path, { method, ca: readFileSync(rootPath) }, (response) => {
      let body = '';
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode, body: JSON.parse(body) }));
    });
    request.on('error', reject);
    request.end();
  });
}

async function refusal(what) {
  try {
    await what();
    return { refused: false };
  } catch (e) {
    return { refused: true, errors: e.errors ?? null, message: String(e.message ?? e) };
  }
}

async function flow() {
  const out = {};
  const adminEnrollment = await ca.enroll({ enrollmentID: 'admin', enrollmentSecret: 'adminpw' });
  const admin = await user('admin', adminEnrollment);
  out.adminCert = adminEnrollment.certificate;
  out.chain = adminEnrollment.rootCertificate;
  const info = await ca._fabricCAClient.getCaInfo(admin.getSigningIdentity());
  out.caName = info.caName;

  const secret1 = await ca.register({
    enrollmentID: 'user1', affiliation: 'org1.department1', role: 'client', maxEnrollments: 1,
    attrs: [{ name: 'app.role', value: 'auditor', ecert: false }, { name: 'email', value: 'user1@org1', ecert: true }],
  }, admin);
  const user1Enrollment = await ca.enroll({
    enrollmentID: 'user1', enrollmentSecret: secret1, attr_reqs: [{ name: 'app.role', optional: false }],
  });
  out.user1Cert = user1Enrollment.certificate;
  const user1 = await user('user1', user1Enrollment);

  await ca.register({
    enrollmentID: 'user2', enrollmentSecret: 'user2pw', affiliation: 'org1', maxEnrollments: 2,
    attrs: [{ name: 'email', value: 'user2@org1', ecert: true }],
  }, admin);
  const user2Enrollment = await ca.enroll({ enrollmentID: 'user2', enrollmentSecret: 'user2pw' });
  out.user2Cert = user2Enrollment.certificate;
  const user2 = await user('user2', user2Enrollment);

  const reenrolled = await ca.reenroll(user1, [{ name: 'app.role' }]);
  out.user1Reenrolled = reenrolled.certificate;

  const revoked = await ca.revoke({ enrollmentID: 'user2', reason: 'keycompromise', gencrl: true }, admin);
  out.revoked = revoked.result;
  out.crl = Buffer.from(await ca.generateCRL({}, admin), 'base64').toString();

  const identities = ca.newIdentityService();
  out.identities = (await identities.getAll(admin)).result.identities.map((i) => i.id).sort();
  out.user1Info = (await identities.getOne('user1', admin)).result;
  out.createdSecret = await identities.create({
    enrollmentID: 'user3', affiliation: 'org2.department1', enrollmentSecret: 'user3pw', maxEnrollments: 3,
  }, admin);
  out.updated = (await identities.update('user3', { maxEnrollments: 5 }, admin)).result;

  const affiliations = ca.newAffiliationService();
  out.affiliationsBefore = (await affiliations.getAll(admin)).result;
  await affiliations.create({ name: 'org3.department1', force: true }, admin);
  out.org3 = (await affiliations.getOne('org3', admin)).result;

  out.user1Certificates = (await ca.newCertificateService().getCertificates({ id: 'user1' }, admin))
    .result.certs.map((c) => serial(c.PEM)).sort();

  // What Fabric CA refuses, and how its clients see it.
  out.wrongSecret = await refusal(() => ca.enroll({ enrollmentID: 'user3', enrollmentSecret: 'nope' }));
  out.unknownUser = await refusal(() => ca.enroll({ enrollmentID: 'nobody', enrollmentSecret: 'x' }));
  out.overLimit = await refusal(() => ca.enroll({ enrollmentID: 'user1', enrollmentSecret: secret1 }));
  out.notRegistrar = await refusal(() => ca.register({ enrollmentID: 'user4', affiliation: 'org1' }, user1));
  out.malformedCsr = await refusal(() => ca.enroll({
    enrollmentID: 'user3', enrollmentSecret: 'user3pw',
    csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
  }));
  const otherKey = await ca.getCryptoSuite().generateKey();
  const forger = new User('admin');
  await forger.setEnrollment(otherKey, adminEnrollment.certificate, 'Org1MSP');
  out.forgedToken = await refusal(() => ca.register({ enrollmentID: 'user5', affiliation: 'org1' }, forger));
  out.revokedCaller = await refusal(() => ca.reenroll(user2));
  out.missingAttribute = await refusal(() => ca.enroll({
    enrollmentID: 'user3', enrollmentSecret: 'user3pw', attr_reqs: [{ name: 'app.role', optional: false }],
  }));
  out.unregistrableAttribute = await refusal(() => ca.register({
    enrollmentID: 'user6', affiliation: 'org1', attrs: [{ name: 'hf.Type', value: 'peer' }],
  }, admin));
  out.duplicate = await refusal(() => ca.register({ enrollmentID: 'user1', affiliation: 'org1' }, admin));
  out.noGenCrl = await refusal(() => ca.generateCRL({}, user1));
  out.noRevoker = await refusal(() => ca.revoke({ enrollmentID: 'user3' }, user1));
  out.wrongCa = await refusal(() => new FabricCAServices(url, { trustedRoots: [readFileSync(rootPath)], verify: true }, 'ca-elsewhere')
    .enroll({ enrollmentID: 'admin', enrollmentSecret: 'adminpw' }));
  out.idemix = await raw('POST', '/api/v1/idemix/credential');
  out.methodNotAllowed = await raw('GET', '/api/v1/enroll');
  out.cainfoAtTop = await raw('GET', '/cainfo');
  console.log(JSON.stringify(out));
}

async function burst() {
  const adminEnrollment = await ca.enroll({ enrollmentID: 'admin', enrollmentSecret: 'adminpw' });
  const admin = await user('admin', adminEnrollment);
  try {
    await ca.register({ enrollmentID: 'burst', enrollmentSecret: 'burstpw', affiliation: 'org1', maxEnrollments: -1 }, admin);
  } catch (e) {
    // Registered by an earlier burst against the same CA.
    if (!(e.errors ?? []).some((error) => error.code === 52)) throw e;
  }
  const count = Number(countArg);
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      const enrollment = await ca.enroll({ enrollmentID: 'burst', enrollmentSecret: 'burstpw' });
      process.stdout.write(`${serial(enrollment.certificate)}\n`);
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker));
}

(mode === 'burst' ? burst() : flow()).catch((e) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
