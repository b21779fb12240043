//! Raft RPCs between orderers over weft's `Cluster` gRPC service (mutual TLS).
//! Requests and answers are openraft's own types as JSON.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::codec;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{RaftKind, RaftRequest};
use crate::raft::TypeConfig;
use weft_node::tls::Tls;

/// Creates connections to the other consenters of one channel.
pub struct Network {
    pub channel_id: String,
    pub tls: Tls,
}

pub struct Connection {
    channel_id: String,
    target: u64,
    client: Result<ClusterClient<Channel>, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            channel_id: self.channel_id.clone(),
            target,
            client: self.tls.connect(&node.addr).map(|c| {
                ClusterClient::new(c)
                    .max_decoding_message_size(weft_node::MAX_GRPC_MESSAGE)
                    .max_encoding_message_size(weft_node::MAX_GRPC_MESSAGE)
            }),
        }
    }
}

impl Connection {
    async fn call<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    >(
        &mut self,
        kind: RaftKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        let client = self
            .client
            .as_mut()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&AnyError::error(e.clone()))))?;
        let payload = codec::encode(request)
            .map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))?;
        let mut rpc = tonic::Request::new(RaftRequest {
            channel: self.channel_id.clone(),
            kind: kind as i32,
            payload,
        });
        rpc.set_timeout(option.hard_ttl());
        let response = client.raft(rpc).await.map_err(|status| {
            RPCError::Unreachable(Unreachable::new(&AnyError::error(format!(
                "{}: {}",
                status.code(),
                status.message()
            ))))
        })?;
        let result: Result<Resp, RaftError<u64, E>> = codec::decode(&response.into_inner().payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RaftKind::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RaftKind::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RaftKind::Vote, &rpc, &option).await
    }
}
