//! The CA's operations, as Fabric CA serves them: who may call what
//! (basic authentication with an enrolment secret for `enroll`, a token
//! signed with an enrolment certificate for everything else), and what each
//! does to the registry. Synchronous: the HTTP layer runs them on blocking
//! threads, since every change waits for the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use weft_crypto::PublicKey;

use crate::cert::{self, CaSigner, Issue, Revoked, fabric_hex};
use crate::config::{CaConfig, affiliation_names};
use crate::error::codes;
use crate::rights;
use crate::store::{Attribute, CRL_COUNTER, CertRecord, IdentityRecord, SERIAL_COUNTER, Store};
use crate::{CaError, secret};

/// One request, as the HTTP layer hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path and query as sent: the token signs them.
    pub uri: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
    pub query: BTreeMap<String, String>,
}

impl Request {
    fn flag(&self, name: &str) -> Result<bool, CaError> {
        match self.query.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(value) if value == "true" || value == "1" => Ok(true),
            Some(value) if value == "false" || value == "0" || value.is_empty() => Ok(false),
            Some(value) => Err(CaError::bad_request(
                codes::GETTING_BOOL_QUERY_PARM,
                format!("Failed to correctly parse value of '{name}' query parameter: {value}"),
            )),
        }
    }
}

/// A successful answer: its status and `result`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub result: Value,
}

fn ok(result: Value) -> Result<Reply, CaError> {
    Ok(Reply {
        status: 200,
        result,
    })
}

fn created(result: Value) -> Result<Reply, CaError> {
    Ok(Reply {
        status: 201,
        result,
    })
}

/// A CA: its configuration, signing key and registry.
pub struct Authority {
    config: CaConfig,
    signer: CaSigner,
    store: Store,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("name", &self.config.ca.name)
            .finish_non_exhaustive()
    }
}

fn body<T: for<'de> Deserialize<'de> + Default>(
    request: &Request,
    required: bool,
) -> Result<T, CaError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        if required {
            return Err(CaError::bad_request(
                codes::EMPTY_BODY,
                "Empty request body",
            ));
        }
        return Ok(T::default());
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| CaError::bad_request(codes::BAD_BODY, format!("Invalid request body: {e}")))
}

/// `null` and absent read the same.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
struct EnrollBody {
    #[serde(default, deserialize_with = "nullable")]
    certificate_request: String,
    #[serde(default, deserialize_with = "nullable")]
    profile: String,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
    #[serde(default, deserialize_with = "nullable")]
    hosts: Vec<String>,
    #[serde(default)]
    attr_reqs: Option<Vec<AttributeRequest>>,
}

#[derive(Debug, Default, Deserialize)]
struct AttributeRequest {
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    optional: bool,
}

#[derive(Debug, Default, Deserialize)]
struct RegisterBody {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, rename = "type", deserialize_with = "nullable")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    secret: String,
    #[serde(default, deserialize_with = "nullable")]
    max_enrollments: i32,
    #[serde(default, deserialize_with = "nullable")]
    affiliation: String,
    #[serde(default, deserialize_with = "nullable")]
    attrs: Vec<Attribute>,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
}

#[derive(Debug, Default, Deserialize)]
struct ModifyBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    max_enrollments: Option<i32>,
    #[serde(default)]
    affiliation: Option<String>,
    #[serde(default)]
    attrs: Option<Vec<Attribute>>,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
}

#[derive(Debug, Default, Deserialize)]
struct RevokeBody {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    aki: String,
    #[serde(default, deserialize_with = "nullable")]
    serial: String,
    #[serde(default, deserialize_with = "nullable")]
    reason: String,
    #[serde(default, deserialize_with = "nullable")]
    gencrl: bool,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenCrlBody {
    #[serde(default, deserialize_with = "nullable")]
    revoked_after: String,
    #[serde(default, deserialize_with = "nullable")]
    revoked_before: String,
    #[serde(default, deserialize_with = "nullable")]
    expire_after: String,
    #[serde(default, deserialize_with = "nullable")]
    expire_before: String,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
}

#[derive(Debug, Default, Deserialize)]
struct AffiliationBody {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    caname: String,
}

/// Fabric CA's serial and AKI notation of what a caller typed.
fn normalize_hex(text: &str) -> String {
    let lower = text.trim().to_ascii_lowercase().replace(':', "");
    let trimmed = lower.trim_start_matches('0');
    if trimmed.is_empty() && !lower.is_empty() {
        "0".into()
    } else {
        trimmed.to_owned()
    }
}

fn identity_info(identity: &IdentityRecord) -> Value {
    json!({
        "id": identity.name,
        "type": identity.kind,
        "affiliation": identity.affiliation,
        "attrs": identity.attrs,
        "max_enrollments": identity.max_enrollments,
    })
}

fn parse_time(field: &str, text: &str, code: u32) -> Result<Option<i64>, CaError> {
    if text.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|e| CaError::bad_request(code, format!("Invalid '{field}' value '{text}': {e}")))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Authority {
    /// Opens the CA: its key and certificate, and its store, which is
    /// created with the bootstrap identities and affiliations the first time.
    pub fn open(config: CaConfig) -> Result<Arc<Self>, String> {
        let signer = CaSigner::load(&config.ca.certfile, &config.ca.keyfile)?;
        let store = Store::open(&config.db.datasource).map_err(|e| e.detail)?;
        let authority = Self {
            config,
            signer,
            store,
        };
        authority.bootstrap().map_err(|e| e.detail)?;
        Ok(Arc::new(authority))
    }

    fn bootstrap(&self) -> Result<(), CaError> {
        if self.store.initialised()? {
            return Ok(());
        }
        let mut write = self.store.write();
        for name in affiliation_names(&self.config.affiliations) {
            write.put_affiliation(&name);
        }
        for identity in &self.config.registry.identities {
            let mut attrs: Vec<Attribute> = identity
                .attrs
                .iter()
                .map(|(name, value)| Attribute {
                    name: name.clone(),
                    value: value.to_string(),
                    ecert: false,
                })
                .collect();
            add_fixed_attributes(
                &mut attrs,
                &identity.name,
                &identity.kind,
                &identity.affiliation,
            );
            write.put_identity(&IdentityRecord {
                name: identity.name.clone(),
                secret: secret::hash(&identity.pass),
                kind: identity.kind.clone(),
                affiliation: identity.affiliation.clone(),
                attrs,
                max_enrollments: max_enrollments(
                    &identity.name,
                    identity.maxenrollments,
                    self.config.registry.maxenrollments,
                )?,
                enrollments: 0,
                revoked: false,
            });
        }
        write.mark_initialised();
        write.commit()
    }

    pub fn name(&self) -> &str {
        &self.config.ca.name
    }

    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    pub fn ca_cert_pem(&self) -> &str {
        self.signer.cert_pem()
    }

    fn check_ca_name(&self, request: &Request, caname: &str) -> Result<(), CaError> {
        let named = request
            .query
            .get("ca")
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(caname);
        if named.is_empty() || named == self.config.ca.name {
            Ok(())
        } else {
            Err(CaError::http(
                404,
                codes::CA_NOT_FOUND,
                format!("CA '{named}' does not exist"),
            ))
        }
    }

    fn server_info(&self) -> Value {
        json!({
            "CAName": self.config.ca.name,
            "CAChain": weft_crypto::pem::base64(self.signer.cert_pem().as_bytes()),
            "IssuerPublicKey": "",
            "IssuerRevocationPublicKey": "",
            "Version": weft_node::operations::VERSION,
        })
    }

    /// `GET|POST /cainfo`: the CA's name and chain; no authentication.
    pub fn cainfo(&self, request: &Request) -> Result<Reply, CaError> {
        let caname = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|v| v.get("caname").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        self.check_ca_name(request, &caname)?;
        ok(self.server_info())
    }

    /// The identity behind `Authorization: Basic`, its secret checked.
    fn password_caller(&self, request: &Request) -> Result<IdentityRecord, CaError> {
        let header = request
            .authorization
            .as_deref()
            .ok_or_else(|| CaError::http(401, codes::NO_AUTH_HEADER, "No authorization header"))?;
        let (user, password) = header
            .strip_prefix("Basic ")
            .and_then(|b64| weft_crypto::pem::unbase64(b64.trim()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
            })
            .ok_or_else(|| {
                CaError::authentication(codes::NO_USER_PASS, "No user/pass in authorization header")
            })?;
        if self.config.registry.maxenrollments == 0 {
            return Err(CaError::authentication(
                codes::ENROLL_DISABLED,
                "Enroll is disabled",
            ));
        }
        let identity = self.store.identity(&user)?.ok_or_else(|| {
            CaError::authentication(codes::INVALID_USER, format!("Failed to get user: {user}"))
        })?;
        if !secret::verify(&password, &identity.secret) {
            return Err(CaError::authentication(
                codes::INVALID_PASS,
                format!("Login failure: incorrect password for identity '{user}'"),
            ));
        }
        Ok(identity)
    }

    /// The identity behind a Fabric CA token: `base64(cert PEM).base64(sig)`,
    /// the signature over `METHOD.base64(uri).base64(body).base64(cert PEM)`
    /// by the key of an unrevoked certificate this CA issued.
    fn token_caller(&self, request: &Request) -> Result<IdentityRecord, CaError> {
        let header = request
            .authorization
            .as_deref()
            .ok_or_else(|| CaError::http(401, codes::NO_AUTH_HEADER, "No authorization header"))?;
        let invalid = |reason: &str| {
            CaError::authentication(
                codes::INVALID_TOKEN,
                format!("Invalid token in authorization header: {reason}"),
            )
        };
        let mut parts = header.split('.');
        let (Some(cert_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a certificate and a signature"));
        };
        let cert_pem = weft_crypto::pem::unbase64(cert_b64)
            .map_err(|_| invalid("the certificate is not base64"))?;
        let der = weft_crypto::pem::certificates(&cert_pem)
            .ok()
            .and_then(|mut ders| (!ders.is_empty()).then(|| ders.remove(0)))
            .ok_or_else(|| invalid("no certificate"))?;
        let cert = self.signer.check_issued(&der).map_err(|reason| {
            CaError::authentication(
                codes::UNTRUSTED_CERTIFICATE,
                format!("Untrusted certificate: {reason}"),
            )
        })?;
        let now = now();
        if now < cert.validity().not_before.timestamp()
            || now > cert.validity().not_after.timestamp()
        {
            return Err(CaError::authentication(
                codes::CERT_EXPIRED,
                "The certificate in the authorization header is expired or not yet valid",
            ));
        }
        let signature = weft_crypto::pem::unbase64(signature_b64)
            .map_err(|_| invalid("the signature is not base64"))?;
        let message = format!(
            "{}.{}.{}.{}",
            request.method,
            weft_crypto::pem::base64(request.uri.as_bytes()),
            weft_crypto::pem::base64(&request.body),
            cert_b64
        );
        PublicKey::from_spki(cert.public_key())
            .map_err(|e| invalid(&e.to_string()))?
            .verify(message.as_bytes(), &signature)
            .map_err(|e| invalid(&format!("the signature does not verify: {e}")))?;
        let id = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let serial = fabric_hex(cert.raw_serial());
        let record = self.store.certificate(&serial)?.ok_or_else(|| {
            CaError::authentication(
                codes::CERT_NOT_FOUND,
                format!("Certificate not found with serial '{serial}'"),
            )
        })?;
        if record.revoked {
            return Err(CaError::authentication(
                codes::CERT_REVOKED,
                "The certificate in the authorization header is a revoked certificate",
            ));
        }
        let identity = self.store.identity(&id)?.ok_or_else(|| {
            CaError::authentication(codes::GETTING_USER, format!("Failed to get user '{id}'"))
        })?;
        if identity.revoked {
            return Err(CaError::authorization(
                codes::REVOKED_ID,
                format!("Enrollment ID '{id}' is revoked, unable to process request"),
            ));
        }
        Ok(identity)
    }

    /// The caller of a token-authenticated request to this CA.
    fn caller(&self, request: &Request, caname: &str) -> Result<IdentityRecord, CaError> {
        self.check_ca_name(request, caname)?;
        self.token_caller(request)
    }

    /// `POST /enroll`: a certificate for the CSR, for the identity whose
    /// secret is in the basic authentication header.
    pub fn enroll(&self, request: &Request) -> Result<Reply, CaError> {
        let caller = self.password_caller(request)?;
        self.issue_for(request, caller, true)
    }

    /// `POST /reenroll`: a new certificate for the caller of a valid token.
    pub fn reenroll(&self, request: &Request) -> Result<Reply, CaError> {
        let caller = self.token_caller(request)?;
        self.issue_for(request, caller, false)
    }

    fn issue_for(
        &self,
        request: &Request,
        caller: IdentityRecord,
        counts: bool,
    ) -> Result<Reply, CaError> {
        let body: EnrollBody = body(request, true)?;
        self.check_ca_name(request, &body.caname)?;
        let pem = self.issue(&caller, &body, counts)?;
        ok(json!({
            "Cert": weft_crypto::pem::base64(pem.as_bytes()),
            "ServerInfo": self.server_info(),
        }))
    }

    /// Registers `name` with type `kind` at the root affiliation (unless it
    /// is registered) and issues it a certificate for `csr_pem`: how
    /// `weft up` enrols a network's nodes, admins and users through their
    /// organisation's CA before the CA serves. The identity gets a random
    /// secret nobody learns: its key and certificate are its credential.
    pub fn enrol_locally(&self, name: &str, kind: &str, csr_pem: &str) -> Result<String, CaError> {
        let identity = match self.store.identity(name)? {
            Some(identity) => identity,
            None => {
                let mut attrs = Vec::new();
                add_fixed_attributes(&mut attrs, name, kind, "");
                let identity = IdentityRecord {
                    name: name.to_owned(),
                    secret: secret::hash(&secret::generate()),
                    kind: kind.to_owned(),
                    affiliation: String::new(),
                    attrs,
                    max_enrollments: -1,
                    enrollments: 0,
                    revoked: false,
                };
                let mut write = self.store.write();
                write.put_identity(&identity);
                write.commit()?;
                identity
            }
        };
        let body = EnrollBody {
            certificate_request: csr_pem.to_owned(),
            ..EnrollBody::default()
        };
        self.issue(&identity, &body, true)
    }

    /// Issues `caller` a certificate as `body` asks; its PEM.
    fn issue(
        &self,
        caller: &IdentityRecord,
        body: &EnrollBody,
        counts: bool,
    ) -> Result<String, CaError> {
        let csr = cert::parse_csr(&body.certificate_request)
            .map_err(|e| CaError::bad_request(codes::BAD_CSR, e))?;
        if csr.common_name != caller.name {
            return Err(CaError::bad_request(
                codes::BAD_CSR,
                "The CSR subject common name must equal the enrollment ID",
            ));
        }
        if csr.is_ca {
            return Err(CaError::bad_request(
                codes::BAD_CSR,
                "The CSR asks for a CA certificate: weft's CA does not issue intermediate CA certificates",
            ));
        }
        let tls = match body.profile.as_str() {
            "" => false,
            "tls" => true,
            other => {
                return Err(CaError::bad_request(
                    codes::BAD_BODY,
                    format!("Unknown signing profile '{other}' (profiles: tls)"),
                ));
            }
        };
        let attributes = attribute_extension(caller, body.attr_reqs.as_deref())?;
        let validity = self
            .config
            .certificate_validity(tls.then_some("tls"))
            .map_err(CaError::internal)?;

        let mut write = self.store.write();
        let mut current = write.store().identity(&caller.name)?.ok_or_else(|| {
            CaError::authentication(
                codes::INVALID_USER,
                format!("Failed to get user: {}", caller.name),
            )
        })?;
        if current.revoked {
            return Err(CaError::authentication(
                codes::INVALID_PASS,
                format!("Login failure: identity '{}' is revoked", current.name),
            ));
        }
        if counts {
            if current.max_enrollments != -1 && current.enrollments >= current.max_enrollments {
                return Err(CaError::authentication(
                    codes::INVALID_PASS,
                    format!(
                        "Login failure: The identity {} has already enrolled {} times, it has reached its maximum enrollment allowance",
                        current.name, current.enrollments
                    ),
                ));
            }
            current.enrollments += 1;
            write.put_identity(&current);
        }
        let counter = write.store().counter(SERIAL_COUNTER)? + 1;
        let serial = serial_number(counter);
        let issued = self
            .signer
            .issue(&Issue {
                serial: &serial,
                csr: &csr,
                organizational_units: organizational_units(&current),
                hosts: &body.hosts,
                validity,
                tls,
                attributes,
            })
            .map_err(CaError::internal)?;
        write.set_counter(SERIAL_COUNTER, counter);
        write.put_certificate(&CertRecord {
            serial: issued.serial.clone(),
            aki: issued.aki.clone(),
            id: current.name.clone(),
            revoked: false,
            reason: 0,
            revoked_at: None,
            not_before: issued.not_before,
            not_after: issued.not_after,
            pem: issued.pem.clone(),
        });
        write.commit()?;
        tracing::info!(id = %current.name, serial = %issued.serial, "certificate issued");
        Ok(issued.pem)
    }

    /// `POST /register`: a new identity; answers its secret.
    pub fn register(&self, request: &Request) -> Result<Reply, CaError> {
        let body: RegisterBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        let (_, secret) = self.add_identity(&caller, body)?;
        created(json!({ "secret": secret }))
    }

    fn add_identity(
        &self,
        caller: &IdentityRecord,
        mut body: RegisterBody,
    ) -> Result<(IdentityRecord, String), CaError> {
        if body.id.is_empty() {
            return Err(CaError::bad_request(
                codes::ADD_IDENTITY,
                "The identity's id is empty",
            ));
        }
        if body.affiliation.is_empty() {
            body.affiliation = caller.affiliation.clone();
        } else if body.affiliation == "." {
            body.affiliation.clear();
        }
        if body.kind.is_empty() {
            body.kind = caller.kind.clone();
        }
        rights::can_act_on_type(caller, &body.kind)?;
        rights::contains_affiliation(caller, &body.affiliation)?;
        if !body.affiliation.is_empty() && !self.store.affiliations()?.contains(&body.affiliation) {
            return Err(CaError::bad_request(
                codes::ADD_IDENTITY,
                format!(
                    "Registration of '{}' failed in affiliation validation: affiliation '{}' does not exist",
                    body.id, body.affiliation
                ),
            ));
        }
        rights::can_register_attributes(&body.attrs, None, caller)?;
        let max_enrollments = max_enrollments(
            &body.id,
            body.max_enrollments,
            self.config.registry.maxenrollments,
        )?;
        let secret = if body.secret.is_empty() {
            secret::generate()
        } else {
            body.secret.clone()
        };
        let mut attrs = body.attrs;
        add_fixed_attributes(&mut attrs, &body.id, &body.kind, &body.affiliation);
        let identity = IdentityRecord {
            name: body.id,
            secret: secret::hash(&secret),
            kind: body.kind,
            affiliation: body.affiliation,
            attrs,
            max_enrollments,
            enrollments: 0,
            revoked: false,
        };
        let mut write = self.store.write();
        if write.store().identity(&identity.name)?.is_some() {
            return Err(CaError::http(
                409,
                codes::ADD_IDENTITY,
                format!("Identity '{}' is already registered", identity.name),
            ));
        }
        write.put_identity(&identity);
        write.commit()?;
        tracing::info!(id = %identity.name, registrar = %caller.name, "identity registered");
        Ok((identity, secret))
    }

    /// `POST /revoke`: one certificate (serial and AKI) or an identity and
    /// all its certificates; optionally answers a fresh CRL.
    pub fn revoke(&self, request: &Request) -> Result<Reply, CaError> {
        let body: RevokeBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        let reason = cert::reason_code(&body.reason).ok_or_else(|| {
            CaError::bad_request(
                codes::REVOKE_FAILURE,
                format!(
                    "Invalid reason '{}' (use a RFC 5280 reason: keycompromise, superseded, …)",
                    body.reason
                ),
            )
        })?;
        let revoked_at = now();
        let mut write = self.store.write();
        let store = &self.store;
        let mut revoked = Vec::new();
        if !body.serial.is_empty() && !body.aki.is_empty() {
            let serial = normalize_hex(&body.serial);
            let aki = normalize_hex(&body.aki);
            let mut record = store
                .certificate(&serial)?
                .filter(|record| record.aki == aki)
                .ok_or_else(|| {
                    CaError::http(
                        404,
                        codes::REVOKED_CERT_NOT_FOUND,
                        format!("Certificate with serial {serial} and AKI {aki} was not found"),
                    )
                })?;
            if !body.id.is_empty() && body.id != record.id {
                return Err(CaError::bad_request(
                    codes::CERT_WRONG_OWNER,
                    format!(
                        "Certificate with serial {serial} and AKI {aki} is not owned by {}",
                        body.id
                    ),
                ));
            }
            self.check_revoker(&caller, &record.id)?;
            if record.revoked {
                return Err(CaError::bad_request(
                    codes::CERT_ALREADY_REVOKED,
                    format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                ));
            }
            record.revoked = true;
            record.reason = reason;
            record.revoked_at = Some(revoked_at);
            write.put_certificate(&record);
            revoked.push(record);
        } else if !body.id.is_empty() {
            let mut identity = store.identity(&body.id)?.ok_or_else(|| {
                CaError::http(
                    404,
                    codes::REVOKE_ID_NOT_FOUND,
                    format!("Identity {} was not found", body.id),
                )
            })?;
            self.check_revoker(&caller, &identity.name)?;
            identity.revoked = true;
            write.put_identity(&identity);
            for mut record in store.certificates()? {
                if record.id == identity.name && !record.revoked {
                    record.revoked = true;
                    record.reason = reason;
                    record.revoked_at = Some(revoked_at);
                    write.put_certificate(&record);
                    revoked.push(record);
                }
            }
        } else {
            return Err(CaError::bad_request(
                codes::MISSING_REVOKE_ARGS,
                "Either Name or Serial and AKI are required for a revoke request",
            ));
        }
        write.commit()?;
        tracing::info!(revoker = %caller.name, count = revoked.len(), "certificates revoked");
        let crl = if body.gencrl {
            weft_crypto::pem::base64(self.generate_crl(None, None, Some(now()), None)?.as_bytes())
        } else {
            String::new()
        };
        ok(json!({
            "RevokedCerts": revoked
                .iter()
                .map(|r| json!({"Serial": r.serial, "AKI": r.aki}))
                .collect::<Vec<_>>(),
            "CRL": crl,
        }))
    }

    fn check_revoker(&self, caller: &IdentityRecord, owner: &str) -> Result<(), CaError> {
        if caller.name == owner {
            return Ok(());
        }
        if !caller.has_right("hf.Revoker") {
            return Err(CaError::authorization(
                codes::NOT_REVOKER,
                format!("'{}' does not have authority to revoke", caller.name),
            ));
        }
        if let Some(owner) = self.store.identity(owner)? {
            rights::contains_affiliation(caller, &owner.affiliation)?;
        }
        Ok(())
    }

    /// `POST /gencrl`: a CRL of the revoked certificates in the windows asked
    /// (by default every revoked certificate that has not expired).
    pub fn gencrl(&self, request: &Request) -> Result<Reply, CaError> {
        let body: GenCrlBody = body(request, false)?;
        let caller = self.caller(request, &body.caname)?;
        if !caller.has_right("hf.GenCRL") {
            return Err(CaError::authorization(
                codes::NO_GENCRL_AUTH,
                format!(
                    "The identity '{}' does not have authority to generate a CRL",
                    caller.name
                ),
            ));
        }
        let revoked_after = parse_time(
            "revokedAfter",
            &body.revoked_after,
            codes::INVALID_REVOKED_AFTER,
        )?;
        let revoked_before = parse_time(
            "revokedBefore",
            &body.revoked_before,
            codes::INVALID_REVOKED_AFTER,
        )?;
        let expire_after = parse_time(
            "expireAfter",
            &body.expire_after,
            codes::INVALID_EXPIRED_AFTER,
        )?;
        let expire_before = parse_time(
            "expireBefore",
            &body.expire_before,
            codes::INVALID_EXPIRED_AFTER,
        )?;
        if let (Some(after), Some(before)) = (revoked_after, revoked_before)
            && after > before
        {
            return Err(CaError::bad_request(
                codes::INVALID_REVOKED_AFTER,
                "Revoked after timestamp is greater than revoked before timestamp",
            ));
        }
        if let (Some(after), Some(before)) = (expire_after, expire_before)
            && after > before
        {
            return Err(CaError::bad_request(
                codes::INVALID_EXPIRED_AFTER,
                "Expiration after timestamp is greater than expiration before timestamp",
            ));
        }
        let crl = self.generate_crl(
            revoked_after,
            revoked_before,
            Some(expire_after.unwrap_or_else(now)),
            expire_before,
        )?;
        ok(json!({ "CRL": weft_crypto::pem::base64(crl.as_bytes()) }))
    }

    /// The current CRL (PEM) of revoked, unexpired certificates.
    pub fn current_crl(&self) -> Result<String, CaError> {
        self.generate_crl(None, None, Some(now()), None)
    }

    fn generate_crl(
        &self,
        revoked_after: Option<i64>,
        revoked_before: Option<i64>,
        expire_after: Option<i64>,
        expire_before: Option<i64>,
    ) -> Result<String, CaError> {
        let within = |value: i64, after: Option<i64>, before: Option<i64>| {
            after.is_none_or(|a| value >= a) && before.is_none_or(|b| value <= b)
        };
        let mut entries = Vec::new();
        for record in self.store.certificates()? {
            let Some(at) = record.revoked_at.filter(|_| record.revoked) else {
                continue;
            };
            if within(at, revoked_after, revoked_before)
                && within(record.not_after, expire_after, expire_before)
            {
                let serial = hex_bytes(&record.serial).ok_or_else(|| {
                    CaError::internal(format!("CA store: serial {} is not hex", record.serial))
                })?;
                entries.push(Revoked {
                    serial,
                    revoked_at: at,
                    reason: record.reason,
                });
            }
        }
        let validity = self.config.crl_validity().map_err(CaError::internal)?;
        let mut write = self.store.write();
        let number = write.store().counter(CRL_COUNTER)? + 1;
        let crl = self.signer.crl(&entries, number, validity).map_err(|e| {
            CaError::http(500, codes::GEN_CRL, format!("Failed to generate CRL: {e}"))
        })?;
        write.set_counter(CRL_COUNTER, number);
        write.commit()?;
        Ok(crl)
    }

    /// `GET /identities`: the identities the caller, a registrar, may manage.
    pub fn list_identities(&self, request: &Request) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        rights::registrar_roles(&caller)?;
        let identities: Vec<Value> = self
            .store
            .identities()?
            .iter()
            .filter(|identity| rights::can_manage(&caller, identity).is_ok())
            .map(identity_info)
            .collect();
        ok(json!({ "identities": identities, "caname": self.config.ca.name }))
    }

    fn managed_identity(
        &self,
        caller: &IdentityRecord,
        id: &str,
    ) -> Result<IdentityRecord, CaError> {
        rights::registrar_roles(caller)?;
        let identity = self.store.identity(id)?.ok_or_else(|| {
            CaError::http(
                404,
                codes::DB_GET,
                format!("Failed to get identity '{id}': not found"),
            )
        })?;
        rights::can_manage(caller, &identity)?;
        Ok(identity)
    }

    /// `GET /identities/{id}`.
    pub fn get_identity(&self, request: &Request, id: &str) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        let identity = self.managed_identity(&caller, id)?;
        let mut info = identity_info(&identity);
        info["caname"] = json!(self.config.ca.name);
        ok(info)
    }

    /// `POST /identities`: as `register`, answering the identity and its secret.
    pub fn add_identity_request(&self, request: &Request) -> Result<Reply, CaError> {
        let body: RegisterBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        let (identity, secret) = self.add_identity(&caller, body)?;
        let mut info = identity_info(&identity);
        info["secret"] = json!(secret);
        info["caname"] = json!(self.config.ca.name);
        created(info)
    }

    /// `PUT /identities/{id}`: type, affiliation, attributes, maximum
    /// enrolments or secret.
    pub fn modify_identity(&self, request: &Request, id: &str) -> Result<Reply, CaError> {
        let body: ModifyBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        self.managed_identity(&caller, id)?;
        let mut write = self.store.write();
        let mut identity = write.store().identity(id)?.ok_or_else(|| {
            CaError::http(
                404,
                codes::DB_GET,
                format!("Failed to get identity '{id}': not found"),
            )
        })?;
        let mut changed = false;
        if let Some(kind) = body.kind.filter(|k| !k.is_empty() && *k != identity.kind) {
            rights::can_act_on_type(&caller, &kind)?;
            identity.kind = kind;
            set_attribute(&mut identity.attrs, "hf.Type", &identity.kind.clone());
            changed = true;
        }
        if let Some(affiliation) = body.affiliation.filter(|a| !a.is_empty()) {
            let affiliation = if affiliation == "." {
                String::new()
            } else {
                affiliation
            };
            rights::contains_affiliation(&caller, &affiliation)?;
            if !affiliation.is_empty() && !write.store().affiliations()?.contains(&affiliation) {
                return Err(CaError::bad_request(
                    codes::MODIFYING_IDENTITY,
                    format!("Affiliation '{affiliation}' does not exist"),
                ));
            }
            identity.affiliation = affiliation;
            set_attribute(
                &mut identity.attrs,
                "hf.Affiliation",
                &identity.affiliation.clone(),
            );
            changed = true;
        }
        if let Some(attrs) = body.attrs.filter(|a| !a.is_empty()) {
            rights::can_register_attributes(&attrs, Some(&identity), &caller)?;
            for attribute in attrs {
                identity.attrs.retain(|a| a.name != attribute.name);
                if !attribute.value.is_empty() {
                    identity.attrs.push(attribute);
                }
            }
            changed = true;
        }
        if let Some(max) = body.max_enrollments.filter(|m| *m != 0) {
            identity.max_enrollments =
                max_enrollments(id, max, self.config.registry.maxenrollments)?;
            changed = true;
        }
        let mut info_secret = None;
        if let Some(new_secret) = body.secret.filter(|s| !s.is_empty()) {
            identity.secret = secret::hash(&new_secret);
            // A new secret starts a new enrolment allowance.
            identity.enrollments = 0;
            info_secret = Some(new_secret);
            changed = true;
        }
        if !changed {
            return Err(CaError::bad_request(
                codes::MODIFYING_IDENTITY,
                format!("No changes were made to identity '{id}'"),
            ));
        }
        write.put_identity(&identity);
        write.commit()?;
        let mut info = identity_info(&identity);
        if let Some(secret) = info_secret {
            info["secret"] = json!(secret);
        }
        info["caname"] = json!(self.config.ca.name);
        ok(info)
    }

    /// `DELETE /identities/{id}`: only with `cfg.identities.allowremove`;
    /// the identity's certificates are revoked.
    pub fn remove_identity(&self, request: &Request, id: &str) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        if !self.config.cfg.identities.allowremove {
            return Err(CaError::authorization(
                codes::REMOVE_IDENTITY,
                "Identity removal is disabled",
            ));
        }
        let identity = self.managed_identity(&caller, id)?;
        if identity.name == caller.name && !request.flag("force")? {
            return Err(CaError::bad_request(
                codes::REMOVE_IDENTITY,
                "Need to use 'force' option to delete your own identity",
            ));
        }
        let mut write = self.store.write();
        revoke_all_of(&mut write, &identity.name)?;
        write.remove_identity(&identity.name);
        write.commit()?;
        let mut info = identity_info(&identity);
        info["caname"] = json!(self.config.ca.name);
        ok(info)
    }

    fn affiliation_tree(&self, root: &str, all: &BTreeSet<String>) -> Value {
        let prefix = if root.is_empty() {
            String::new()
        } else {
            format!("{root}.")
        };
        let children: Vec<Value> = all
            .iter()
            .filter(|name| {
                name.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
            })
            .map(|child| self.affiliation_tree(child, all))
            .collect();
        let mut node = json!({ "name": root });
        if !children.is_empty() {
            node["affiliations"] = Value::Array(children);
        }
        node
    }

    /// `GET /affiliations`: the tree under the caller's affiliation.
    pub fn list_affiliations(&self, request: &Request) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        let all = self.store.affiliations()?;
        let mut tree = self.affiliation_tree(&caller.affiliation, &all);
        tree["caname"] = json!(self.config.ca.name);
        ok(tree)
    }

    /// `GET /affiliations/{name}`.
    pub fn get_affiliation(&self, request: &Request, name: &str) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        rights::contains_affiliation(&caller, name)?;
        let all = self.store.affiliations()?;
        if !all.contains(name) {
            return Err(CaError::http(
                404,
                codes::DB_GET,
                format!("Failed to get affiliation '{name}': not found"),
            ));
        }
        let mut tree = self.affiliation_tree(name, &all);
        tree["caname"] = json!(self.config.ca.name);
        ok(tree)
    }

    /// `POST /affiliations[?force=true]`: `force` creates missing parents.
    pub fn add_affiliation(&self, request: &Request) -> Result<Reply, CaError> {
        let body: AffiliationBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        rights::affiliation_manager(&caller)?;
        let name = body.name;
        check_affiliation_name(&name, codes::ADD_AFFILIATION)?;
        rights::contains_affiliation(&caller, &name)?;
        let force = request.flag("force")?;
        let mut write = self.store.write();
        let all = write.store().affiliations()?;
        if all.contains(&name) {
            return Err(CaError::http(
                409,
                codes::ADD_AFFILIATION,
                format!("Affiliation '{name}' already exists"),
            ));
        }
        let levels: Vec<&str> = name.split('.').collect();
        for depth in 1..levels.len() {
            let parent = levels[..depth].join(".");
            if !all.contains(&parent) {
                if !force {
                    return Err(CaError::bad_request(
                        codes::ADD_AFFILIATION,
                        format!(
                            "Parent affiliation '{parent}' does not exist, 'force' option required on request to add affiliation"
                        ),
                    ));
                }
                write.put_affiliation(&parent);
            }
        }
        write.put_affiliation(&name);
        write.commit()?;
        created(json!({ "name": name, "caname": self.config.ca.name }))
    }

    fn affected(&self, name: &str) -> Result<(Vec<String>, Vec<IdentityRecord>), CaError> {
        let prefix = format!("{name}.");
        let subtree: Vec<String> = self
            .store
            .affiliations()?
            .into_iter()
            .filter(|a| a == name || a.starts_with(&prefix))
            .collect();
        let identities: Vec<IdentityRecord> = self
            .store
            .identities()?
            .into_iter()
            .filter(|i| i.affiliation == name || i.affiliation.starts_with(&prefix))
            .collect();
        Ok((subtree, identities))
    }

    /// `DELETE /affiliations/{name}[?force=true]`: only with
    /// `cfg.affiliations.allowremove`; `force` also removes sub-affiliations
    /// and the identities in them (which needs `cfg.identities.allowremove`).
    pub fn remove_affiliation(&self, request: &Request, name: &str) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        if !self.config.cfg.affiliations.allowremove {
            return Err(CaError::authorization(
                codes::REMOVE_AFFILIATION,
                "Affiliation removal is disabled",
            ));
        }
        rights::affiliation_manager(&caller)?;
        rights::contains_affiliation(&caller, name)?;
        if name == caller.affiliation {
            return Err(CaError::authorization(
                codes::REMOVE_AFFILIATION,
                "Can't remove the caller's own affiliation",
            ));
        }
        let force = request.flag("force")?;
        let (subtree, identities) = self.affected(name)?;
        if subtree.is_empty() {
            return Err(CaError::http(
                404,
                codes::DB_GET,
                format!("Failed to get affiliation '{name}': not found"),
            ));
        }
        if (subtree.len() > 1 || !identities.is_empty()) && !force {
            return Err(CaError::bad_request(
                codes::REMOVE_AFFILIATION,
                format!(
                    "Cannot delete affiliation '{name}': it has sub-affiliations or identities; use 'force' to remove them too"
                ),
            ));
        }
        if !identities.is_empty() {
            if !self.config.cfg.identities.allowremove {
                return Err(CaError::authorization(
                    codes::REMOVE_AFFILIATION,
                    "Removing the affiliation removes identities, but identity removal is disabled",
                ));
            }
            for identity in &identities {
                rights::can_manage(&caller, identity)?;
            }
        }
        let mut write = self.store.write();
        for identity in &identities {
            revoke_all_of(&mut write, &identity.name)?;
            write.remove_identity(&identity.name);
        }
        for affiliation in &subtree {
            write.remove_affiliation(affiliation);
        }
        write.commit()?;
        ok(json!({
            "name": name,
            "affiliations": subtree.iter().filter(|a| *a != name).map(|a| json!({"name": a})).collect::<Vec<_>>(),
            "identities": identities.iter().map(identity_info).collect::<Vec<_>>(),
            "caname": self.config.ca.name,
        }))
    }

    /// `PUT /affiliations/{name}[?force=true]`: renames the affiliation and
    /// its subtree; `force` moves the identities in it along.
    pub fn modify_affiliation(&self, request: &Request, name: &str) -> Result<Reply, CaError> {
        let body: AffiliationBody = body(request, true)?;
        let caller = self.caller(request, &body.caname)?;
        rights::affiliation_manager(&caller)?;
        rights::contains_affiliation(&caller, name)?;
        let new_name = body.name;
        check_affiliation_name(&new_name, codes::MODIFY_AFFILIATION)?;
        rights::contains_affiliation(&caller, &new_name)?;
        let force = request.flag("force")?;
        let (subtree, identities) = self.affected(name)?;
        if subtree.is_empty() {
            return Err(CaError::http(
                404,
                codes::DB_GET,
                format!("Failed to get affiliation '{name}': not found"),
            ));
        }
        if self.store.affiliations()?.contains(&new_name) {
            return Err(CaError::http(
                409,
                codes::MODIFY_AFFILIATION,
                format!("Affiliation '{new_name}' already exists"),
            ));
        }
        if !identities.is_empty() {
            if !force {
                return Err(CaError::bad_request(
                    codes::MODIFY_AFFILIATION,
                    format!(
                        "The affiliation '{name}' has identities; use 'force' to move them to '{new_name}'"
                    ),
                ));
            }
            for identity in &identities {
                rights::can_manage(&caller, identity)?;
            }
        }
        let rename = |old: &str| format!("{new_name}{}", &old[name.len()..]);
        let mut write = self.store.write();
        for affiliation in &subtree {
            write.remove_affiliation(affiliation);
            write.put_affiliation(&rename(affiliation));
        }
        let mut moved = Vec::new();
        for identity in &identities {
            let mut identity = identity.clone();
            identity.affiliation = rename(&identity.affiliation);
            set_attribute(
                &mut identity.attrs,
                "hf.Affiliation",
                &identity.affiliation.clone(),
            );
            write.put_identity(&identity);
            moved.push(identity_info(&identity));
        }
        write.commit()?;
        ok(json!({
            "name": new_name,
            "identities": moved,
            "caname": self.config.ca.name,
        }))
    }

    /// `GET /certificates`: certificates of identities in the caller's
    /// affiliation, filtered by `id`, `serial`, `aki`, `notrevoked`,
    /// `notexpired`, `revoked_start`/`revoked_end`, `expired_start`/`expired_end`.
    pub fn list_certificates(&self, request: &Request) -> Result<Reply, CaError> {
        let caller = self.caller(request, "")?;
        let query = |name: &str| request.query.get(name).map(String::as_str).unwrap_or("");
        let id = query("id");
        let serial = normalize_hex(query("serial"));
        let aki = normalize_hex(query("aki"));
        let not_revoked = request.flag("notrevoked")?;
        let not_expired = request.flag("notexpired")?;
        let revoked_start = parse_time("revoked_start", query("revoked_start"), codes::BAD_BODY)?;
        let revoked_end = parse_time("revoked_end", query("revoked_end"), codes::BAD_BODY)?;
        let expired_start = parse_time("expired_start", query("expired_start"), codes::BAD_BODY)?;
        let expired_end = parse_time("expired_end", query("expired_end"), codes::BAD_BODY)?;
        let identities: BTreeMap<String, IdentityRecord> = self
            .store
            .identities()?
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        let now = now();
        let certs: Vec<Value> = self
            .store
            .certificates()?
            .into_iter()
            .filter(|c| id.is_empty() || c.id == id)
            .filter(|c| serial.is_empty() || c.serial == serial)
            .filter(|c| aki.is_empty() || c.aki == aki)
            .filter(|c| !not_revoked || !c.revoked)
            .filter(|c| !not_expired || c.not_after >= now)
            .filter(|c| revoked_start.is_none_or(|s| c.revoked_at.is_some_and(|r| r >= s)))
            .filter(|c| revoked_end.is_none_or(|e| c.revoked_at.is_some_and(|r| r <= e)))
            .filter(|c| expired_start.is_none_or(|s| c.not_after >= s))
            .filter(|c| expired_end.is_none_or(|e| c.not_after <= e))
            .filter(|c| {
                c.id == caller.name
                    || identities.get(&c.id).is_some_and(|owner| {
                        rights::contains_affiliation(&caller, &owner.affiliation).is_ok()
                    })
            })
            .map(|c| json!({ "PEM": c.pem }))
            .collect();
        ok(json!({ "caname": self.config.ca.name, "certs": certs }))
    }
}

fn check_affiliation_name(name: &str, code: u32) -> Result<(), CaError> {
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(CaError::bad_request(
            code,
            format!("'{name}' is not an affiliation name (dot-separated, no empty levels)"),
        ));
    }
    Ok(())
}

fn revoke_all_of(write: &mut crate::store::Write<'_>, id: &str) -> Result<(), CaError> {
    let at = now();
    for mut record in write.store().certificates()? {
        if record.id == id && !record.revoked {
            record.revoked = true;
            record.reason = 9; // privilegeWithdrawn
            record.revoked_at = Some(at);
            write.put_certificate(&record);
        }
    }
    Ok(())
}

/// Serial numbers: 12 random bytes, then the store's counter, so that no two
/// certificates share one (the counter is committed with the certificate)
/// and none can be guessed.
fn serial_number(counter: u64) -> Vec<u8> {
    let mut serial = weft_crypto::random_bytes::<20>().to_vec();
    serial[12..].copy_from_slice(&counter.to_be_bytes());
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1;
    }
    serial
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let padded = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_owned()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(padded.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Fabric CA's subject OUs: the identity's type, then its affiliation's levels.
fn organizational_units(identity: &IdentityRecord) -> Vec<String> {
    std::iter::once(identity.kind.clone())
        .chain(identity.affiliation_path())
        .collect()
}

fn set_attribute(attrs: &mut Vec<Attribute>, name: &str, value: &str) {
    match attrs.iter_mut().find(|a| a.name == name) {
        Some(attribute) => attribute.value = value.to_owned(),
        None => attrs.push(Attribute {
            name: name.into(),
            value: value.into(),
            ecert: true,
        }),
    }
}

/// `hf.EnrollmentID`, `hf.Type` and `hf.Affiliation`, which Fabric CA gives
/// every identity and puts into its enrolment certificates.
fn add_fixed_attributes(attrs: &mut Vec<Attribute>, id: &str, kind: &str, affiliation: &str) {
    for (name, value) in [
        ("hf.EnrollmentID", id),
        ("hf.Type", kind),
        ("hf.Affiliation", affiliation),
    ] {
        if !attrs.iter().any(|a| a.name == name) {
            attrs.push(Attribute {
                name: name.into(),
                value: value.into(),
                ecert: true,
            });
        }
    }
}

/// Fabric CA's rule for an identity's maximum enrolments against the CA's.
fn max_enrollments(id: &str, requested: i32, ca_max: i32) -> Result<i32, CaError> {
    let bad = |message: String| CaError::bad_request(codes::ADD_IDENTITY, message);
    if requested < -1 {
        return Err(bad(format!(
            "Max enrollment in registration request may not be less than -1, but was {requested}"
        )));
    }
    match ca_max {
        -1 => Ok(if requested == 0 { -1 } else { requested }),
        0 => Ok(0),
        _ => match requested {
            -1 => Err(bad(format!(
                "Registration for '{id}' can not have unlimited enrollments: the CA allows at most {ca_max}"
            ))),
            0 => Ok(ca_max),
            n if n > ca_max => Err(bad(format!(
                "Requested enrollments ({n}) exceeds maximum allowable enrollments ({ca_max})"
            ))),
            n => Ok(n),
        },
    }
}

/// The attribute extension's JSON: the attributes asked for (`attr_reqs`),
/// or, when none are named, those registered with `ecert: true`.
fn attribute_extension(
    identity: &IdentityRecord,
    requests: Option<&[AttributeRequest]>,
) -> Result<Option<Vec<u8>>, CaError> {
    let mut attrs = BTreeMap::new();
    match requests {
        None => {
            for attribute in identity.attrs.iter().filter(|a| a.ecert) {
                attrs.insert(attribute.name.clone(), attribute.value.clone());
            }
            if attrs.is_empty() {
                return Ok(None);
            }
        }
        Some(requests) => {
            let mut missing = Vec::new();
            for request in requests {
                match identity.attribute(&request.name) {
                    Some(value) => {
                        attrs.insert(request.name.clone(), value.to_owned());
                    }
                    None if !request.optional => missing.push(request.name.clone()),
                    None => {}
                }
            }
            if !missing.is_empty() {
                return Err(CaError::bad_request(
                    codes::UNKNOWN,
                    format!("The following required attributes are missing: {missing:?}"),
                ));
            }
        }
    }
    Ok(Some(
        serde_json::to_vec(&json!({ "attrs": attrs })).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_limits_follow_fabric_ca() {
        assert_eq!(max_enrollments("u", 0, -1).expect("ok"), -1);
        assert_eq!(max_enrollments("u", 3, -1).expect("ok"), 3);
        assert_eq!(max_enrollments("u", 0, 5).expect("ok"), 5);
        assert!(max_enrollments("u", -1, 5).is_err());
        assert!(max_enrollments("u", 6, 5).is_err());
        assert!(max_enrollments("u", -2, -1).is_err());
    }

    #[test]
    fn serials_are_unique_by_counter_and_positive() {
        let a = serial_number(1);
        let b = serial_number(2);
        assert_ne!(a[12..], b[12..]);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
        assert_eq!(hex_bytes(&fabric_hex(&a)).expect("hex"), a);
        assert_eq!(normalize_hex("00:AB:0c"), "ab0c");
    }
}
