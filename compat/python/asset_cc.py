"""An asset-transfer chaincode written with Fabric's Python shim
(fabric-chaincode-python), run unchanged on weft as a chaincode server.
Functions and JSON follow Fabric's asset-transfer-basic sample; writes emit an
event named after the function.

    CHAINCODE_ID=basic_1.0 CHAINCODE_SERVER_ADDRESS=127.0.0.1:9999 python asset_cc.py
"""
import json

from fabric_chaincode_python.fabric_shim import response, server
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode


def asset(id, color, size, owner, value):
    return {"AppraisedValue": int(value), "Color": color, "ID": id, "Owner": owner, "Size": int(size)}


async def read(stub, id):
    value = await stub.get_state(id)
    if not value:
        raise LookupError(f"the asset {id} does not exist")
    return json.loads(bytes(value))


async def write(stub, event, a):
    data = json.dumps(a, separators=(",", ":")).encode()
    await stub.put_state(a["ID"], data)
    stub.set_event(event, data)
    return data


class AssetTransfer(Chaincode):
    @staticmethod
    async def init(stub):
        return response.success(b"")

    @staticmethod
    async def invoke(stub):
        function, params = stub.get_function_and_parameters()
        try:
            if function == "CreateAsset":
                if await stub.get_state(params[0]):
                    raise ValueError(f"the asset {params[0]} already exists")
                return response.success(await write(stub, function, asset(*params)))
            if function == "ReadAsset":
                return response.success(json.dumps(await read(stub, params[0]), separators=(",", ":")))
            if function == "UpdateAsset":
                await read(stub, params[0])
                return response.success(await write(stub, function, asset(*params)))
            if function == "TransferAsset":
                a = await read(stub, params[0])
                old = a["Owner"]
                a["Owner"] = params[1]
                await write(stub, function, a)
                return response.success(old)
            if function == "AssetExists":
                return response.success("true" if await stub.get_state(params[0]) else "false")
            return response.error(f"function {function} is not defined")
        except (LookupError, ValueError, IndexError) as error:
            return response.error(str(error))


if __name__ == "__main__":
    server.start(AssetTransfer)
