// An asset-transfer chaincode written with the official fabric-contract-api,
// with the functions and JSON of Fabric's asset-transfer-basic sample, plus a
// few functions weft's tests use to make chaincode misbehave. Functions
// return strings (fabric-contract-api 2.5.8 cannot always serialise objects).
'use strict';

const { Contract } = require('fabric-contract-api');

function asset(id, color, size, owner, value) {
    // Keys in the order the Go sample marshals them.
    return { AppraisedValue: Number(value), Color: color, ID: id, Owner: owner, Size: Number(size) };
}

class AssetTransfer extends Contract {
    async InitLedger(ctx) {
        const assets = [
            asset('asset1', 'blue', 5, 'Tomoko', 300),
            asset('asset2', 'red', 5, 'Brad', 400),
            asset('asset3', 'green', 10, 'Jin Soo', 500),
        ];
        for (const a of assets) {
            await ctx.stub.putState(a.ID, Buffer.from(JSON.stringify(a)));
        }
        return '';
    }

    async read(ctx, id) {
        const bytes = await ctx.stub.getState(id);
        if (!bytes || bytes.length === 0) {
            throw new Error(`the asset ${id} does not exist`);
        }
        return JSON.parse(bytes.toString());
    }

    async write(ctx, event, a) {
        const json = JSON.stringify(a);
        await ctx.stub.putState(a.ID, Buffer.from(json));
        ctx.stub.setEvent(event, Buffer.from(json));
        return json;
    }

    async CreateAsset(ctx, id, color, size, owner, value) {
        const existing = await ctx.stub.getState(id);
        if (existing && existing.length > 0) {
            throw new Error(`the asset ${id} already exists`);
        }
        return this.write(ctx, 'CreateAsset', asset(id, color, size, owner, value));
    }

    async ReadAsset(ctx, id) {
        return JSON.stringify(await this.read(ctx, id));
    }

    async UpdateAsset(ctx, id, color, size, owner, value) {
        await this.read(ctx, id);
        return this.write(ctx, 'UpdateAsset', asset(id, color, size, owner, value));
    }

    async DeleteAsset(ctx, id) {
        await this.read(ctx, id);
        await ctx.stub.deleteState(id);
        return '';
    }

    async AssetExists(ctx, id) {
        const bytes = await ctx.stub.getState(id);
        return String(Boolean(bytes && bytes.length > 0));
    }

    async TransferAsset(ctx, id, newOwner) {
        const a = await this.read(ctx, id);
        const old = a.Owner;
        a.Owner = newOwner;
        await this.write(ctx, 'TransferAsset', a);
        return old;
    }

    async GetAllAssets(ctx) {
        const all = [];
        for await (const { value } of ctx.stub.getStateByRange('', '')) {
            all.push(JSON.parse(Buffer.from(value).toString()));
        }
        return JSON.stringify(all);
    }

    async GetAssetHistory(ctx, id) {
        const history = [];
        for await (const entry of ctx.stub.getHistoryForKey(id)) {
            history.push({ txId: entry.txId, isDelete: entry.isDelete, value: Buffer.from(entry.value).toString() });
        }
        return JSON.stringify(history);
    }

    async QueryByOwner(ctx, owner) {
        const all = [];
        for await (const { key } of ctx.stub.getQueryResult(JSON.stringify({ selector: { Owner: owner } }))) {
            all.push(key);
        }
        return JSON.stringify(all);
    }

    // Reads a key through another chaincode on the same channel.
    async ReadThrough(ctx, chaincode, id) {
        const response = await ctx.stub.invokeChaincode(chaincode, ['ReadAsset', id], ctx.stub.getChannelID());
        return Buffer.from(response.payload).toString();
    }

    // Private data: the value comes in the transient field "value", so it
    // never appears in the transaction.
    async PutPrivate(ctx, collection, id) {
        const value = ctx.stub.getTransient().get('value');
        if (!value || value.length === 0) {
            throw new Error('the transient field "value" is required');
        }
        await ctx.stub.putPrivateData(collection, id, value);
        return '';
    }

    async GetPrivate(ctx, collection, id) {
        const bytes = await ctx.stub.getPrivateData(collection, id);
        return Buffer.from(bytes).toString();
    }

    async GetPrivateHash(ctx, collection, id) {
        const bytes = await ctx.stub.getPrivateDataHash(collection, id);
        return Buffer.from(bytes).toString('hex');
    }

    async DeletePrivate(ctx, collection, id) {
        await ctx.stub.deletePrivateData(collection, id);
        return '';
    }

    // The caller as fabric-shim's ClientIdentity sees it: attribute-based
    // access control reads Fabric CA's attributes this way.
    async ClientAttribute(ctx, name) {
        const identity = ctx.clientIdentity;
        return JSON.stringify({
            mspId: identity.getMSPID(),
            id: identity.getID(),
            value: identity.getAttributeValue(name),
        });
    }

    // Writes a key, then the process dies before completing the transaction.
    async CrashMidTransaction(ctx, id) {
        await ctx.stub.putState(id, Buffer.from('never committed'));
        process.exit(3);
    }
}

module.exports.contracts = [AssetTransfer];
