// Signing interop between weft and the official @hyperledger/fabric-gateway client.
//
//   node gateway-signing.mjs propose CERT KEY MSPID
//     Builds a proposal for basic/CreateAsset on mychannel with the official
//     client and signed by the client's private-key signer (its offline-signing
//     flow); prints {"proposedTransaction": hex, "transactionId": ...}. No
//     network call is made: the gRPC client connects lazily.
//
//   node gateway-signing.mjs verify CERT MESSAGE_HEX SIGNATURE_HEX
//     Verifies a weft signature with the curve library the client's signer is
//     built on (@noble/curves P-256), requiring low-S DER as Fabric does;
//     prints {"valid": true|false}.
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { connect, signers } from '@hyperledger/fabric-gateway';
import { p256 } from '@noble/curves/nist';

const [command, ...args] = process.argv.slice(2);

if (command === 'propose') {
    const [certPath, keyPath, mspId] = args;
    const client = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure());
    const signer = signers.newPrivateKeySigner(createPrivateKey(readFileSync(keyPath)));
    // No signer on the connection: the client's offline-signing flow, which
    // signs the same digest its evaluate/endorse calls sign internally.
    const gateway = connect({ client, identity: { mspId, credentials: readFileSync(certPath) } });
    const contract = gateway.getNetwork('mychannel').getContract('basic');
    const unsigned = contract.newProposal('CreateAsset', { arguments: ['asset7', 'blue', '5', 'Tom', '300'] });
    const signature = await signer(unsigned.getDigest());
    const proposal = gateway.newSignedProposal(unsigned.getBytes(), signature);
    const proposed = Buffer.from(proposal.getBytes()).toString('hex');
    console.log(JSON.stringify({ proposedTransaction: proposed, transactionId: proposal.getTransactionId() }));
    gateway.close();
    client.close();
} else if (command === 'verify') {
    const [certPath, messageHex, signatureHex] = args;
    const jwk = createPublicKey(readFileSync(certPath)).export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
    const digest = createHash('sha256').update(Buffer.from(messageHex, 'hex')).digest();
    let valid;
    try {
        valid = p256.verify(Buffer.from(signatureHex, 'hex'), digest, point, { lowS: true, prehash: false, format: 'der' });
    } catch {
        valid = false;
    }
    console.log(JSON.stringify({ valid }));
} else {
    console.error('usage: gateway-signing.mjs propose CERT KEY MSPID | verify CERT MESSAGE_HEX SIGNATURE_HEX');
    process.exit(2);
}
