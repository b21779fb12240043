'use strict';

const { WorkloadModuleBase } = require('@hyperledger/caliper-core');

// Creates 40 assets per worker (round "create") or reads them back ("read").
class AssetWorkload extends WorkloadModuleBase {
    async initializeWorkloadModule(workerIndex, totalWorkers, roundIndex, roundArguments, sutAdapter, sutContext) {
        await super.initializeWorkloadModule(workerIndex, totalWorkers, roundIndex, roundArguments, sutAdapter, sutContext);
        this.count = 0;
    }

    async submitTransaction() {
        // run.sh names each run, so a second run creates new assets.
        const run = process.env.WEFT_CALIPER_RUN || 'run';
        const id = `caliper-${run}-${this.workerIndex}-${this.count % 40}`;
        this.count += 1;
        const create = this.roundArguments.function === 'create';
        return this.sutAdapter.sendRequests({
            contractId: 'basic',
            channel: 'mychannel',
            contractFunction: create ? 'CreateAsset' : 'ReadAsset',
            contractArguments: create ? [id, 'blue', '5', 'caliper', '100'] : [id],
            invokerIdentity: 'User1',
            readOnly: !create,
        });
    }
}

module.exports.createWorkloadModule = () => new AssetWorkload();
