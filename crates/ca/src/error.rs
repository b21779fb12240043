//! Fabric CA's error answers: an HTTP status, a numeric code and a message,
//! sent as `{"success":false,"result":null,"errors":[{"code":…,"message":…}],
//! "messages":[]}`.
//!
//! As Fabric CA does, a failed authentication or authorisation is answered
//! with a generic code and message (20 "Authentication failure", 71
//! "Authorization failure") so that a caller learns nothing about which
//! check failed; the precise reason goes to the CA's log.

/// Fabric CA's error codes (`lib/caerrors`), the ones weft's CA answers with.
pub mod codes {
    pub const UNKNOWN: u32 = 0;
    pub const METHOD_NOT_ALLOWED: u32 = 1;
    pub const NO_AUTH_HEADER: u32 = 2;
    pub const EMPTY_BODY: u32 = 4;
    pub const BAD_BODY: u32 = 5;
    pub const NOT_REVOKER: u32 = 7;
    pub const REVOKED_CERT_NOT_FOUND: u32 = 8;
    pub const CERT_WRONG_OWNER: u32 = 9;
    pub const REVOKE_ID_NOT_FOUND: u32 = 10;
    pub const REVOKE_FAILURE: u32 = 12;
    pub const MISSING_REVOKE_ARGS: u32 = 15;
    pub const CA_NOT_FOUND: u32 = 19;
    pub const AUTHENTICATION_FAILURE: u32 = 20;
    pub const NO_USER_PASS: u32 = 21;
    pub const ENROLL_DISABLED: u32 = 22;
    pub const INVALID_USER: u32 = 23;
    pub const INVALID_PASS: u32 = 24;
    pub const INVALID_TOKEN: u32 = 25;
    pub const UNTRUSTED_CERTIFICATE: u32 = 26;
    pub const CERT_EXPIRED: u32 = 27;
    pub const CERT_REVOKED: u32 = 28;
    pub const CERT_NOT_FOUND: u32 = 30;
    pub const BAD_CSR: u32 = 31;
    pub const NO_GENCRL_AUTH: u32 = 35;
    pub const INVALID_REVOKED_AFTER: u32 = 36;
    pub const INVALID_EXPIRED_AFTER: u32 = 37;
    pub const GEN_CRL: u32 = 41;
    pub const REG_ATTR_AUTH: u32 = 42;
    pub const MISSING_REG_ATTR: u32 = 43;
    pub const CALLER_NOT_AFFILIATED: u32 = 44;
    pub const GETTING_USER: u32 = 49;
    pub const ADD_IDENTITY: u32 = 52;
    pub const REGISTRAR_INVALID_TYPE: u32 = 54;
    pub const REMOVE_IDENTITY: u32 = 56;
    pub const GETTING_BOOL_QUERY_PARM: u32 = 57;
    pub const MODIFYING_IDENTITY: u32 = 58;
    pub const MISSING_ROLE: u32 = 59;
    pub const ADD_AFFILIATION: u32 = 60;
    pub const REMOVE_AFFILIATION: u32 = 61;
    pub const DB_GET: u32 = 63;
    pub const MODIFY_AFFILIATION: u32 = 64;
    pub const CERT_ALREADY_REVOKED: u32 = 66;
    pub const REVOKED_ID: u32 = 70;
    pub const AUTHORIZATION_FAILURE: u32 = 71;
}

/// An error answer: what the caller is told, and what the CA logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaError {
    pub status: u16,
    /// The code the caller sees.
    pub code: u32,
    /// The message the caller sees.
    pub message: String,
    /// The precise code and reason, for the CA's log.
    pub local_code: u32,
    pub detail: String,
}

impl CaError {
    /// An error whose code and message the caller sees as they are.
    pub fn http(status: u16, code: u32, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            code,
            local_code: code,
            detail: message.clone(),
            message,
        }
    }

    /// A failed authentication: 401, code 20 "Authentication failure".
    pub fn authentication(local_code: u32, detail: impl Into<String>) -> Self {
        Self {
            status: 401,
            code: codes::AUTHENTICATION_FAILURE,
            message: "Authentication failure".into(),
            local_code,
            detail: detail.into(),
        }
    }

    /// A caller without the right: 403, code 71 "Authorization failure".
    pub fn authorization(local_code: u32, detail: impl Into<String>) -> Self {
        Self {
            status: 403,
            code: codes::AUTHORIZATION_FAILURE,
            message: "Authorization failure".into(),
            local_code,
            detail: detail.into(),
        }
    }

    /// A request that cannot be served as written: 400.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::http(400, code, message)
    }

    /// Something failed inside the CA (its store, its key): 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::http(500, codes::UNKNOWN, message)
    }

    /// The JSON body Fabric CA's clients read.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "success": false,
            "result": null,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
        })
    }
}

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (code {}): {}",
            self.status, self.local_code, self.detail
        )
    }
}

impl std::error::Error for CaError {}

impl From<fjall::Error> for CaError {
    fn from(error: fjall::Error) -> Self {
        Self::internal(format!("CA store: {error}"))
    }
}
