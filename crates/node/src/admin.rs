//! Node administration, the same rule on peers and orderers: a request is
//! accepted only if it is signed by an admin of the node's own organisation
//! (its local MSP), made within the node's time window, never seen before
//! (nonce), and arrives over mutual TLS with the client certificate it names.
//!
//! Fabric's peers require the local MSP admin's signature; its orderers'
//! channel participation API trusts any TLS client certificate from the
//! configured admin CAs. weft requires the signature on both, so holding a
//! TLS certificate of the organisation (as every node and user does) is not
//! enough to join or remove channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tonic::{Request, Status};
use weft_crypto::Signer;
use weft_material::SigningIdentity;
use weft_msp::{Identity, MspManager, MspManagerConfig};

use crate::clock::{Clock, check_window};
use crate::proto::admin_request::Body;
use crate::proto::{AdminRequest, SignedAdminRequest};

/// Nonces remembered at most; beyond it (after expired ones are dropped),
/// admin requests are refused as RESOURCE_EXHAUSTED until room frees up.
const NONCES_MAX: usize = 65_536;

/// Who may administer this node, and the replay cache.
#[derive(Debug)]
pub struct AdminAuthority {
    msp_id: String,
    msps: MspManager,
    clock: Arc<dyn Clock>,
    window: Duration,
    /// Nonce → when it stops mattering (unix ms).
    seen: Mutex<HashMap<Vec<u8>, i64>>,
    /// The CAs a caller's TLS client certificate must chain to (the
    /// node's listener accepts any certificate at the handshake).
    tls_clients: Option<crate::tls::ClientVerifier>,
}

/// An admin request that passed every check.
#[derive(Debug)]
pub struct Authorized {
    pub admin: Arc<Identity>,
    pub body: Body,
}

impl AdminAuthority {
    /// The admins of the MSP in `msp_dir` (the node's own MSP directory:
    /// `cacerts/`, `config.yaml` NodeOUs, `admincerts/`).
    pub fn load(
        msp_dir: &std::path::Path,
        msp_id: &str,
        clock: Arc<dyn Clock>,
        window: Duration,
    ) -> Result<Self, String> {
        let config = weft_material::msp_dir::load_msp_config(msp_dir, msp_id)
            .map_err(|e| format!("local MSP: {e}"))?;
        let msp = weft_msp::Msp::from_config(&config)
            .map_err(|e| format!("local MSP {}: {e}", msp_dir.display()))?;
        Ok(AdminAuthority {
            msp_id: msp_id.to_owned(),
            msps: MspManager::new([msp], MspManagerConfig::default()),
            clock,
            window,
            seen: Mutex::default(),
            tls_clients: None,
        })
    }

    /// Requires callers' TLS client certificates to chain to `verifier`'s CAs.
    pub fn trusting_tls_clients(mut self, verifier: crate::tls::ClientVerifier) -> Self {
        self.tls_clients = Some(verifier);
        self
    }

    /// Checks a signed admin request; refusals are logged with their reason
    /// and answered UNAUTHENTICATED (no client certificate), INVALID_ARGUMENT
    /// (malformed) or PERMISSION_DENIED (anything else).
    pub fn authorize(
        &self,
        operation: &str,
        request: &Request<SignedAdminRequest>,
    ) -> Result<Authorized, Status> {
        let certs = request.peer_certs();
        let trusted = match (&self.tls_clients, &certs) {
            (Some(verifier), Some(chain)) => verifier.verify(chain).map_err(|e| {
                Status::unauthenticated(format!(
                    "the admin service requires a TLS client certificate issued by a trusted CA: {e}"
                ))
            }),
            _ => Ok(()),
        };
        let presented = certs.and_then(|certs| certs.first().map(|cert| weft_crypto::sha256(cert)));
        trusted
            .and_then(|()| self.check(presented, request.get_ref()))
            .inspect_err(|status| {
                let peer = request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "an unknown address".into());
                // Escaped: the reason can quote bytes the caller chose.
                crate::refusal!(
                    "admin {operation} from {peer} refused: {}",
                    status.message().escape_debug()
                );
            })
    }

    /// Checks that `creator` (a serialized identity) is an admin of this
    /// node's organisation and signed `message` with `signature`, and that
    /// `timestamp_seconds` is within the request window: the local-admin
    /// check of Fabric's channel-less proposals (installing chaincode).
    pub fn check_signed_by_admin(
        &self,
        creator: &[u8],
        message: &[u8],
        signature: &[u8],
        timestamp_seconds: i64,
    ) -> Result<Arc<Identity>, String> {
        let now_ms = self.clock.now_unix_ms();
        check_window(timestamp_seconds.saturating_mul(1000), now_ms, self.window)?;
        let admin = self
            .msps
            .validate(creator, now_ms / 1000)
            .map_err(|e| format!("the creator is not an identity of {}: {e}", self.msp_id))?;
        if !admin.is_admin() {
            return Err(format!(
                "{} is not an admin of {}, the organisation of this peer",
                admin.subject(),
                self.msp_id
            ));
        }
        admin
            .verify(message, signature)
            .map_err(|e| format!("the proposal's signature: {e}"))?;
        Ok(admin)
    }

    /// `presented`: SHA-256 of the TLS client certificate the request came with.
    fn check(
        &self,
        presented: Option<[u8; 32]>,
        signed: &SignedAdminRequest,
    ) -> Result<Authorized, Status> {
        let presented = presented.ok_or_else(|| {
            Status::unauthenticated(
                "the admin service requires a TLS client certificate issued by a trusted CA",
            )
        })?;
        let inner = AdminRequest::decode(signed.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("admin request: {e}")))?;
        let now_ms = self.clock.now_unix_ms();
        check_window(inner.timestamp_unix_ms, now_ms, self.window)
            .map_err(Status::permission_denied)?;
        if inner.tls_cert_hash != presented {
            return Err(Status::permission_denied(
                "the request is bound to another TLS client certificate than the one it arrived with",
            ));
        }
        let admin = self
            .msps
            .validate(&inner.creator, now_ms / 1000)
            .map_err(|e| {
                Status::permission_denied(format!(
                    "the request's creator is not an identity of {}: {e}",
                    self.msp_id
                ))
            })?;
        if !admin.is_admin() {
            return Err(Status::permission_denied(format!(
                "{} is not an admin of {}",
                admin.subject(),
                self.msp_id
            )));
        }
        admin
            .verify(&signed.request, &signed.signature)
            .map_err(|e| Status::permission_denied(format!("the request's signature: {e}")))?;
        if inner.nonce.len() < 16 {
            return Err(Status::invalid_argument(
                "the request's nonce must be at least 16 bytes",
            ));
        }
        self.remember(inner.nonce, now_ms)?;
        let body = inner
            .body
            .ok_or_else(|| Status::invalid_argument("the admin request has no body"))?;
        Ok(Authorized { admin, body })
    }

    /// Refuses a nonce seen within the window (a replayed request).
    fn remember(&self, nonce: Vec<u8>, now_ms: i64) -> Result<(), Status> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(&nonce).is_some_and(|&until| until >= now_ms) {
            return Err(Status::permission_denied(
                "the request was already received (replayed nonce)",
            ));
        }
        if seen.len() >= NONCES_MAX {
            seen.retain(|_, until| *until >= now_ms);
            if seen.len() >= NONCES_MAX {
                return Err(Status::resource_exhausted(
                    "too many admin requests within the time window",
                ));
            }
        }
        // A nonce matters as long as its request could still be in the window.
        let until = now_ms.saturating_add(2 * self.window.as_millis() as i64);
        seen.insert(nonce, until);
        Ok(())
    }
}

/// Signs admin requests as an admin identity, bound to the TLS client
/// certificate the caller connects with.
#[derive(Debug, Clone)]
pub struct AdminSigner {
    identity: Arc<SigningIdentity>,
    tls_cert_hash: Vec<u8>,
}

impl AdminSigner {
    /// `tls_cert_pem`: the client certificate of the connection the requests go over.
    pub fn new(identity: Arc<SigningIdentity>, tls_cert_pem: &[u8]) -> Result<Self, String> {
        let der = crate::tls::pem_ders(tls_cert_pem)
            .into_iter()
            .next()
            .ok_or("the TLS client certificate is not a PEM certificate")?;
        Ok(AdminSigner {
            identity,
            tls_cert_hash: weft_crypto::sha256(&der).to_vec(),
        })
    }

    pub fn sign(&self, body: Body) -> Result<SignedAdminRequest, String> {
        let now_ms = crate::clock::SystemClock.now_unix_ms();
        let request = AdminRequest {
            creator: self.identity.serialized(),
            timestamp_unix_ms: now_ms,
            nonce: weft_crypto::random_bytes::<24>().to_vec(),
            tls_cert_hash: self.tls_cert_hash.clone(),
            body: Some(body),
        }
        .encode_to_vec();
        let signature = self
            .identity
            .sign(&request)
            .map_err(|e| format!("signing the admin request: {e}"))?;
        Ok(SignedAdminRequest { request, signature })
    }
}

/// The body an operation expects; anything else is INVALID_ARGUMENT.
#[macro_export]
macro_rules! admin_body {
    ($authorized:expr, $variant:ident) => {
        match $authorized.body {
            $crate::proto::admin_request::Body::$variant(body) => Ok(body),
            _ => Err(tonic::Status::invalid_argument(concat!(
                "the signed request is not a ",
                stringify!($variant),
                " request"
            ))),
        }
    };
}

/// A connection to a node's admin service as one of its organisation's admins.
#[derive(Debug, Clone)]
pub struct AdminConnection {
    client: crate::proto::admin_client::AdminClient<tonic::transport::Channel>,
    signer: AdminSigner,
    timeout: Option<Duration>,
}

impl AdminConnection {
    /// Dials `endpoint` with `tls` (which must carry a client certificate)
    /// and signs every request as `admin`.
    pub fn new(
        tls: &crate::tls::Tls,
        endpoint: &str,
        admin: Arc<SigningIdentity>,
    ) -> Result<Self, String> {
        let channel = tls.channel(endpoint)?;
        Ok(AdminConnection {
            client: crate::proto::admin_client::AdminClient::new(channel)
                .max_encoding_message_size(crate::MAX_GRPC_MESSAGE),
            signer: AdminSigner::new(admin, &tls.cert_pem)?,
            timeout: None,
        })
    }

    /// A deadline for every call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn request(&self, body: Body) -> Result<Request<SignedAdminRequest>, Status> {
        let signed = self.signer.sign(body).map_err(Status::internal)?;
        let mut request = Request::new(signed);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }

    pub async fn join(&self, config_block: Vec<u8>) -> Result<crate::proto::ChannelInfo, Status> {
        let request = self.request(Body::Join(crate::proto::JoinRequest {
            config_block,
            snapshot_path: String::new(),
        }))?;
        Ok(self.client.clone().join(request).await?.into_inner())
    }

    pub async fn join_by_snapshot(
        &self,
        snapshot_path: String,
    ) -> Result<crate::proto::ChannelInfo, Status> {
        let request = self.request(Body::Join(crate::proto::JoinRequest {
            config_block: Vec::new(),
            snapshot_path,
        }))?;
        Ok(self.client.clone().join(request).await?.into_inner())
    }

    pub async fn list(&self) -> Result<Vec<crate::proto::ChannelInfo>, Status> {
        let request = self.request(Body::List(crate::proto::ListRequest {}))?;
        Ok(self
            .client
            .clone()
            .list(request)
            .await?
            .into_inner()
            .channels)
    }

    pub async fn info(&self, channel: &str) -> Result<crate::proto::ChannelInfo, Status> {
        let request = self.request(Body::Info(crate::proto::ChannelRequest {
            channel: channel.to_owned(),
        }))?;
        Ok(self.client.clone().info(request).await?.into_inner())
    }

    pub async fn remove(&self, channel: &str) -> Result<(), Status> {
        let request = self.request(Body::Remove(crate::proto::ChannelRequest {
            channel: channel.to_owned(),
        }))?;
        self.client.clone().remove(request).await?;
        Ok(())
    }

    pub async fn chaincode_credentials(
        &self,
        package_id: &str,
    ) -> Result<crate::proto::ChaincodeCredentials, Status> {
        let request = self.request(Body::ChaincodeCredentials(
            crate::proto::ChaincodeCredentialsRequest {
                package_id: package_id.to_owned(),
            },
        ))?;
        Ok(self
            .client
            .clone()
            .chaincode_credentials(request)
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use weft_testkit::TestNetwork;

    use super::*;
    use crate::clock::FixedClock;

    const WINDOW: Duration = Duration::from_secs(15 * 60);
    const TLS: [u8; 32] = [7; 32];

    fn request(identity: &SigningIdentity, at_ms: i64, nonce: u8) -> SignedAdminRequest {
        let request = AdminRequest {
            creator: identity.serialized(),
            timestamp_unix_ms: at_ms,
            nonce: vec![nonce; 24],
            tls_cert_hash: TLS.to_vec(),
            body: Some(Body::List(crate::proto::ListRequest {})),
        }
        .encode_to_vec();
        let signature = identity.sign(&request).expect("sign");
        SignedAdminRequest { request, signature }
    }

    #[test]
    fn only_fresh_once_bound_requests_of_an_admin_pass() {
        let network = TestNetwork::generate();
        let clock = Arc::new(FixedClock::at_unix_seconds(network.now as u64));
        let authority = AdminAuthority::load(
            &network.orderer_dir(0).join("msp"),
            "OrdererMSP",
            Arc::clone(&clock) as Arc<dyn Clock>,
            WINDOW,
        )
        .expect("authority");
        let admin = SigningIdentity::load(
            &network
                .orderer_org_dir()
                .join("users/Admin@example.com/msp"),
            "OrdererMSP",
        )
        .expect("admin");
        let now = clock.now_unix_ms();
        let refused = |result: Result<Authorized, Status>, says: &str| {
            let status = result.expect_err("refused");
            assert!(
                status.message().contains(says),
                "{status:?} should say {says}"
            );
        };

        let fresh = request(&admin, now, 1);
        assert!(authority.check(Some(TLS), &fresh).is_ok());
        refused(authority.check(Some(TLS), &fresh), "replayed");
        refused(
            authority.check(Some([8; 32]), &request(&admin, now, 2)),
            "another TLS",
        );
        refused(
            authority.check(None, &request(&admin, now, 3)),
            "TLS client certificate",
        );
        let node = network.orderer(0);
        refused(
            authority.check(Some(TLS), &request(&node, now, 4)),
            "is not an admin",
        );
        let user = network.user("org1.example.com", "User1", "Org1MSP");
        refused(
            authority.check(Some(TLS), &request(&user, now, 5)),
            "not an identity of OrdererMSP",
        );

        // A request made now is refused once the clock has moved past the window.
        let later = request(&admin, now, 6);
        clock.advance(WINDOW + Duration::from_secs(1));
        refused(authority.check(Some(TLS), &later), "old");
        assert!(
            authority
                .check(Some(TLS), &request(&admin, clock.now_unix_ms(), 6))
                .is_ok()
        );
    }
}
