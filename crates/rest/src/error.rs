//! Error answers: an HTTP status and `{"error": {"code", "message",
//! "phase", "requestId"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use weft_client::ClientError;
use weft_sdk::SdkError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable name: `UNAUTHORIZED`, `BAD_REQUEST`, `CHAINCODE_ERROR`, …
    pub code: &'static str,
    pub message: String,
    /// The phase of a transaction that failed (endorse, submit, commit).
    pub phase: Option<&'static str>,
    pub request_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            phase: None,
            request_id: String::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn with_request(mut self, request_id: &str) -> Self {
        self.request_id = request_id.to_owned();
        self
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        });
        if let Some(phase) = self.phase {
            error["phase"] = phase.into();
        }
        serde_json::json!({ "error": error })
    }

    /// What a failed call to the network means for the caller.
    pub fn from_sdk(error: &SdkError) -> Self {
        let phase = Some(error.phase().as_str());
        let (status, code, message) = match error {
            SdkError::Config(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "CONFIGURATION",
                message.clone(),
            ),
            SdkError::Evaluate { source }
            | SdkError::Endorse { source }
            | SdkError::Submit { source, .. } => client_error(source),
            SdkError::Commit {
                code: Some(code), ..
            } => (
                StatusCode::CONFLICT,
                "TRANSACTION_INVALID",
                format!("{error} ({})", code.as_str_name()),
            ),
            SdkError::Commit { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "COMMIT_UNKNOWN",
                error.to_string(),
            ),
            SdkError::Conflicts { .. } => {
                (StatusCode::CONFLICT, "MVCC_CONFLICT", error.to_string())
            }
            SdkError::Events(message) => (StatusCode::BAD_GATEWAY, "EVENTS", message.clone()),
        };
        Self {
            status,
            code,
            message,
            phase,
            request_id: String::new(),
        }
    }
}

/// The peers' own words, where the gateway passed them on.
fn detail_messages(source: &ClientError) -> String {
    match source {
        ClientError::Gateway {
            message, details, ..
        } => {
            let details: Vec<String> = details
                .iter()
                .map(|d| format!("{} ({}): {}", d.address, d.msp_id, d.message))
                .collect();
            if details.is_empty() {
                message.clone()
            } else {
                format!("{message}: {}", details.join("; "))
            }
        }
        other => other.to_string(),
    }
}

/// The chaincode's message in a gateway error, if the chaincode answered with one.
fn chaincode_message(message: &str) -> Option<String> {
    const MARK: &str = "chaincode response ";
    let rest = &message[message.rfind(MARK)? + MARK.len()..];
    let (_status, text) = rest.split_once(", ")?;
    Some(text.trim().to_owned())
}

fn client_error(source: &ClientError) -> (StatusCode, &'static str, String) {
    let message = detail_messages(source);
    let code = match source {
        ClientError::Gateway { code, .. } => *code,
        ClientError::Refused { .. } => {
            return (StatusCode::UNPROCESSABLE_ENTITY, "CHAINCODE_ERROR", message);
        }
        _ => return (StatusCode::BAD_GATEWAY, "GATEWAY_ERROR", message),
    };
    // A chaincode that answered with an error ("chaincode response 500,
    // <its message>"): the caller gets the chaincode's own words.
    if let Some(chaincode) = chaincode_message(&message) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "CHAINCODE_ERROR",
            chaincode,
        );
    }
    match code {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
            (StatusCode::FORBIDDEN, "FORBIDDEN", message)
        }
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", message),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            (StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
        }
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message),
        tonic::Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "TIMEOUT", message),
        tonic::Code::ResourceExhausted => {
            (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", message)
        }
        tonic::Code::Aborted => (StatusCode::CONFLICT, "ABORTED", message),
        _ => (StatusCode::BAD_GATEWAY, "GATEWAY_ERROR", message),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chaincode_error_is_told_in_the_chaincodes_words() {
        assert_eq!(
            chaincode_message(
                "evaluate call to endorser returned error: chaincode response 500, the asset x does not exist: 127.0.0.1:7051 (Org1MSP): chaincode response 500, the asset x does not exist"
            )
            .as_deref(),
            Some("the asset x does not exist")
        );
        assert_eq!(chaincode_message("access denied"), None);
    }
}
