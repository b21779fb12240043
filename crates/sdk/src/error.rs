use weft_client::ClientError;
use weft_protos::peer::TxValidationCode;

/// The phase a call failed in, as Fabric's gateway reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Config,
    Evaluate,
    Endorse,
    Submit,
    Commit,
    Events,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Config => "config",
            Phase::Evaluate => "evaluate",
            Phase::Endorse => "endorse",
            Phase::Submit => "submit",
            Phase::Commit => "commit",
            Phase::Events => "events",
        }
    }
}

/// Why a call failed, naming its phase.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("client configuration: {0}")]
    Config(String),
    #[error("evaluate: {source}")]
    Evaluate { source: ClientError },
    #[error("endorse: {source}")]
    Endorse { source: ClientError },
    #[error("submit of transaction {tx_id}: {source}")]
    Submit { tx_id: String, source: ClientError },
    /// Committed invalid (for another reason than a read conflict), or its
    /// status could not be learnt.
    #[error("commit of transaction {tx_id}: {message}")]
    Commit {
        tx_id: String,
        code: Option<TxValidationCode>,
        block: Option<u64>,
        message: String,
    },
    /// Every attempt ended in an MVCC read (or phantom read) conflict.
    #[error(
        "{attempts} attempt(s), each committed as a read conflict (last transaction {tx_id}, {code:?}); raise retry.attempts or reduce contention on the keys"
    )]
    Conflicts {
        tx_id: String,
        attempts: u32,
        code: TxValidationCode,
    },
    #[error("chaincode events: {0}")]
    Events(String),
}

impl SdkError {
    pub fn phase(&self) -> Phase {
        match self {
            SdkError::Config(_) => Phase::Config,
            SdkError::Evaluate { .. } => Phase::Evaluate,
            SdkError::Endorse { .. } => Phase::Endorse,
            SdkError::Submit { .. } => Phase::Submit,
            SdkError::Commit { .. } | SdkError::Conflicts { .. } => Phase::Commit,
            SdkError::Events(_) => Phase::Events,
        }
    }

    /// The gRPC code of the gateway's answer, where there was one.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            SdkError::Evaluate { source }
            | SdkError::Endorse { source }
            | SdkError::Submit { source, .. } => match source {
                ClientError::Gateway { code, .. } => Some(*code),
                _ => None,
            },
            _ => None,
        }
    }
}
