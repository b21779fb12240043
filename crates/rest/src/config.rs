//! `rest.yaml`: where the REST gateway listens, its API key file, the
//! identities keys may act as (each with its organisation's gateway peer),
//! retries, timeouts and limits. Relative paths are relative to the file.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! keys: keys.json
//! identities:
//!   Org1/User1:
//!     mspId: Org1MSP
//!     identity: {msp: organizations/.../users/User1@org1.example.com/msp}
//!     gateway: {endpoint: "127.0.0.1:7051", tlsCaCert: organizations/.../tls/ca.crt}
//! retry: {attempts: 5, backoff: 50ms, maxBackoff: 2s}
//! timeout: 30s
//! limits: {maxBodyBytes: 1048576, maxInFlight: 256}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use weft_sdk::config::{GatewayConfig, IdentityConfig, RetryConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The API key file (`weft rest key create` writes it).
    pub keys: PathBuf,
    pub identities: BTreeMap<String, IdentitySpec>,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default = "thirty_seconds")]
    pub timeout: String,
    #[serde(default = "ten_seconds")]
    pub commit_check: String,
    #[serde(default)]
    pub limits: Limits,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn thirty_seconds() -> String {
    "30s".into()
}

fn ten_seconds() -> String {
    "10s".into()
}

/// An identity keys may act as: `Org1/User1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    pub msp_id: String,
    pub identity: IdentityConfig,
    pub gateway: GatewayConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Larger request bodies are refused (413).
    #[serde(default = "one_mib")]
    pub max_body_bytes: usize,
    /// Requests in flight at once (event streams aside); more are refused (429).
    #[serde(default = "two_hundred_fifty_six")]
    pub max_in_flight: usize,
}

fn one_mib() -> usize {
    1 << 20
}

fn two_hundred_fifty_six() -> usize {
    256
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: one_mib(),
            max_in_flight: two_hundred_fifty_six(),
        }
    }
}

/// Durations of a loaded configuration.
#[derive(Debug, Clone)]
pub struct Timing {
    pub timeout: Duration,
    pub commit_check: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl RestConfig {
    pub fn load(path: &Path) -> Result<(Self, Timing), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut config: RestConfig =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.keys);
        for identity in config.identities.values_mut() {
            identity.identity.resolve(base);
            identity.gateway.resolve(base);
        }
        let duration = |field: &str, text: &str| {
            weft_sdk::config::parse_duration(text)
                .map_err(|e| format!("{}: {field} {text:?}: {e}", path.display()))
        };
        if config.retry.attempts == 0 {
            return Err(format!(
                "{}: retry.attempts is 0: use 1 for no retries",
                path.display()
            ));
        }
        if config.limits.max_in_flight == 0 || config.limits.max_body_bytes == 0 {
            return Err(format!("{}: limits must be positive", path.display()));
        }
        let timing = Timing {
            timeout: duration("timeout", &config.timeout)?,
            commit_check: duration("commitCheck", &config.commit_check)?,
            backoff: duration("retry.backoff", &config.retry.backoff)?,
            max_backoff: duration("retry.maxBackoff", &config.retry.max_backoff)?,
        };
        Ok((config, timing))
    }
}
