// What weft's Fabric Gateway test applications share: a TLS connection with
// the official client, and turning errors into JSON.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers } from '@hyperledger/fabric-gateway';

export function grpcClient(endpoint, tlsCa) {
    return new grpc.Client(endpoint, grpc.credentials.createSsl(readFileSync(tlsCa)));
}

// A gateway as CERT's owner, signing with KEY (another key forges signatures).
// An Ed25519 key signs the whole message (as Fabric 3 verifies it), so the
// client is told not to hash first.
export function gatewayFor(client, mspId, certPath, keyPath) {
    const key = createPrivateKey(readFileSync(keyPath));
    return connect({
        client,
        identity: { mspId, credentials: readFileSync(certPath) },
        signer: signers.newPrivateKeySigner(key),
        hash: key.asymmetricKeyType === 'ed25519' ? hash.none : hash.sha256,
        evaluateOptions: () => ({ deadline: Date.now() + 15000 }),
        endorseOptions: () => ({ deadline: Date.now() + 30000 }),
        submitOptions: () => ({ deadline: Date.now() + 10000 }),
        commitStatusOptions: () => ({ deadline: Date.now() + 30000 }),
    });
}

export function describe(error) {
    return {
        name: error?.constructor?.name,
        code: error?.code,
        message: String(error?.message ?? error),
        details: (error?.details ?? []).map((d) => ({ address: d.address, mspId: d.mspId, message: d.message })),
    };
}

export async function attempt(action) {
    try {
        return { ok: await action() };
    } catch (error) {
        return { error: describe(error) };
    }
}
