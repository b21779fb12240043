//! MSP validation with real certificates from weft's cryptogen: the accepted
//! case and each way an identity or signature is refused, each with its own error.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, PKCS_ECDSA_P256_SHA256, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use weft_crypto::{SignatureError, Signer, high_s_twin};
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_material::{SigningIdentity, layout, msp_dir};
use weft_msp::{
    IdentityError, Msp, MspError, MspManager, MspManagerConfig, MspRole, NodeRole, Principal,
};
use weft_protos::Message;
use weft_protos::msp::SerializedIdentity;
use weft_spec::NetworkSpec;

struct Network {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    now: i64,
}

fn network() -> Network {
    network_with(NetworkSpec::default_network())
}

fn network_with(spec: NetworkSpec) -> Network {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("organizations");
    let config = CryptogenConfig::default();
    let now = config.now.unix_timestamp();
    cryptogen::generate(&spec, &root, &config, &mut |_| {}).expect("cryptogen");
    Network {
        _dir: dir,
        root,
        now,
    }
}

impl Network {
    fn org_dir(&self, domain: &str) -> std::path::PathBuf {
        layout::peer_org_dir(&self.root, domain)
    }

    fn msp(&self, domain: &str, msp_id: &str) -> Msp {
        let config =
            msp_dir::load_msp_config(&self.org_dir(domain).join("msp"), msp_id).expect("load msp");
        Msp::from_config(&config).expect("valid msp")
    }

    fn manager(&self) -> MspManager {
        MspManager::new(
            [
                self.msp("org1.example.com", "Org1MSP"),
                self.msp("org2.example.com", "Org2MSP"),
            ],
            MspManagerConfig::default(),
        )
    }

    fn user(&self, domain: &str, user: &str, msp_id: &str) -> SigningIdentity {
        SigningIdentity::load(
            &layout::user_dir(&self.org_dir(domain), user, domain).join("msp"),
            msp_id,
        )
        .expect("signing identity")
    }

    fn peer(&self, domain: &str, msp_id: &str) -> SigningIdentity {
        SigningIdentity::load(&layout::peer_dir(&self.root, domain, 0).join("msp"), msp_id)
            .expect("peer identity")
    }

    fn ca(&self, domain: &str) -> Issuer<'static, KeyPair> {
        let ca_dir = self.org_dir(domain).join("ca");
        let key = KeyPair::from_pem(&read(&ca_dir.join("priv_sk"))).expect("ca key");
        Issuer::from_ca_cert_pem(&read(&ca_dir.join(format!("ca.{domain}-cert.pem"))), key)
            .expect("issuer")
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

fn serialized(msp_id: &str, cert_pem: &str) -> Vec<u8> {
    SerializedIdentity {
        mspid: msp_id.into(),
        id_bytes: cert_pem.as_bytes().to_vec(),
    }
    .encode_to_vec()
}

/// A client certificate issued by `issuer`, valid over [start, end].
fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    start: OffsetDateTime,
    end: OffsetDateTime,
    serial: u64,
) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec![]).expect("params");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "client");
    params
        .distinguished_name
        .push(DnType::CommonName, "someone@org1.example.com");
    params.not_before = start;
    params.not_after = end;
    params.serial_number = Some(SerialNumber::from(serial));
    params.signed_by(&key, issuer).expect("sign").pem()
}

/// A PEM CRL signed by `issuer`, revoking `serials`.
fn crl_pem(issuer: &Issuer<'_, KeyPair>, serials: &[u64]) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let revoked = serials.iter().map(|serial| RevokedCertParams {
        serial_number: SerialNumber::from(*serial),
        revocation_time: now - Duration::minutes(1),
        reason_code: None,
        invalidity_date: None,
    });
    CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked.collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .expect("crl")
    .pem()
    .expect("crl pem")
    .into_bytes()
}

#[test]
fn a_generated_user_is_a_valid_client_of_its_org() {
    let net = network();
    let manager = net.manager();
    let user = net.user("org1.example.com", "User1", "Org1MSP");
    let identity = manager
        .validate(&user.serialized(), net.now)
        .expect("valid identity");
    assert_eq!(identity.msp_id(), "Org1MSP");
    assert_eq!(identity.role(), Some(NodeRole::Client));
    assert!(identity.subject().contains("User1@org1.example.com"));

    let message = b"a proposal";
    let signature = user.sign(message).expect("sign");
    identity
        .verify(message, &signature)
        .expect("signature verifies");

    assert!(identity.satisfies(&Principal::role("Org1MSP", MspRole::Member)));
    assert!(identity.satisfies(&Principal::role("Org1MSP", MspRole::Client)));
    assert!(!identity.satisfies(&Principal::role("Org1MSP", MspRole::Peer)));
    assert!(!identity.satisfies(&Principal::role("Org1MSP", MspRole::Admin)));
    assert!(
        !identity.satisfies(&Principal::role("Org2MSP", MspRole::Member)),
        "wrong org"
    );
}

/// With `signatureAlgorithm: ed25519`, signing CAs and identities are
/// Ed25519 (TLS stays P-256), and they validate, sign and verify like
/// P-256 ones; a signature by another key is refused.
#[test]
fn ed25519_identities_validate_sign_and_verify() {
    let mut spec = NetworkSpec::default_network();
    spec.signature_algorithm = weft_spec::SignatureAlgorithm::Ed25519;
    let net = network_with(spec);
    let manager = net.manager();
    let user = net.user("org1.example.com", "User1", "Org1MSP");
    assert!(matches!(
        user.public_key(),
        weft_crypto::PublicKey::Ed25519(_)
    ));
    let tls = read(
        &net.org_dir("org1.example.com")
            .join("tlsca/tlsca.org1.example.com-cert.pem"),
    );
    let tls = x509_parser::pem::parse_x509_pem(tls.as_bytes())
        .expect("pem")
        .1;
    assert_eq!(
        tls.parse_x509()
            .expect("x509")
            .public_key()
            .algorithm
            .algorithm
            .to_id_string(),
        "1.2.840.10045.2.1",
        "TLS stays ECDSA"
    );
    let identity = manager
        .validate(&user.serialized(), net.now)
        .expect("an Ed25519 identity is valid");
    assert_eq!(identity.role(), Some(NodeRole::Client));
    let message = b"a proposal";
    let signature = user.sign(message).expect("sign");
    assert_eq!(signature.len(), 64);
    identity.verify(message, &signature).expect("verifies");
    let other = net.peer("org1.example.com", "Org1MSP");
    let forged = other.sign(message).expect("sign");
    assert!(identity.verify(message, &forged).is_err());
    let peer = manager
        .validate(&other.serialized(), net.now)
        .expect("valid peer");
    assert_eq!(peer.role(), Some(NodeRole::Peer));
}

#[test]
fn roles_follow_node_ous() {
    let net = network();
    let manager = net.manager();
    let peer = manager
        .validate(
            &net.peer("org1.example.com", "Org1MSP").serialized(),
            net.now,
        )
        .expect("peer");
    assert_eq!(peer.role(), Some(NodeRole::Peer));
    assert!(peer.satisfies(&Principal::role("Org1MSP", MspRole::Peer)));
    let admin = manager
        .validate(
            &net.user("org1.example.com", "Admin", "Org1MSP")
                .serialized(),
            net.now,
        )
        .expect("admin");
    assert!(admin.is_admin());
    assert!(admin.satisfies(&Principal::role("Org1MSP", MspRole::Admin)));
    assert!(!admin.satisfies(&Principal::role("Org1MSP", MspRole::Client)));
}

#[test]
fn an_org2_certificate_claiming_org1_is_refused() {
    let net = network();
    let org2_user = net.user("org2.example.com", "User1", "Org2MSP");
    let claim = serialized(
        "Org1MSP",
        std::str::from_utf8(org2_user.certificate_pem()).expect("pem"),
    );
    match net.manager().validate(&claim, net.now) {
        Err(IdentityError::UnknownIssuer { msp_id, subject }) => {
            assert_eq!(msp_id, "Org1MSP");
            assert!(subject.contains("User1@org2.example.com"));
        }
        other => panic!("expected UnknownIssuer, got {other:?}"),
    }
}

#[test]
fn an_unknown_msp_is_refused() {
    let net = network();
    let user = net.user("org1.example.com", "User1", "Org1MSP");
    let claim = serialized(
        "Org9MSP",
        std::str::from_utf8(user.certificate_pem()).expect("pem"),
    );
    let error = net
        .manager()
        .validate(&claim, net.now)
        .expect_err("unknown msp");
    assert_eq!(
        error,
        IdentityError::UnknownMsp {
            msp_id: "Org9MSP".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "unknown MSP Org9MSP: it is not an organisation of this channel"
    );
}

#[test]
fn a_certificate_from_a_look_alike_ca_is_refused() {
    // Same subject as Org1's CA, different key: only the signature tells them apart.
    let net = network();
    let rogue_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec![]).expect("params");
    for (ty, value) in [
        (DnType::CountryName, "US"),
        (DnType::StateOrProvinceName, "California"),
        (DnType::LocalityName, "San Francisco"),
        (DnType::OrganizationName, "org1.example.com"),
        (DnType::CommonName, "ca.org1.example.com"),
    ] {
        params.distinguished_name.push(ty, value);
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let rogue = Issuer::new(params, rogue_key);
    let now = OffsetDateTime::now_utc();
    let cert = client_cert(
        &rogue,
        now - Duration::hours(1),
        now + Duration::days(1),
        77,
    );
    let error = net
        .manager()
        .validate(&serialized("Org1MSP", &cert), net.now)
        .expect_err("rogue");
    assert!(
        matches!(error, IdentityError::UnknownIssuer { .. }),
        "{error:?}"
    );
}

#[test]
fn an_expired_certificate_is_refused_even_after_being_cached() {
    let net = network();
    let manager = net.manager();
    let start = OffsetDateTime::now_utc() - Duration::days(30);
    let end = OffsetDateTime::now_utc() - Duration::days(1);
    let expired = client_cert(&net.ca("org1.example.com"), start, end, 78);
    let error = manager
        .validate(&serialized("Org1MSP", &expired), net.now)
        .expect_err("expired");
    assert!(matches!(error, IdentityError::Expired { .. }), "{error:?}");
    assert!(error.to_string().contains("expired at"), "{error}");

    // Valid today, cached; two days after its end it must be refused again.
    let soon = client_cert(
        &net.ca("org1.example.com"),
        start,
        OffsetDateTime::now_utc() + Duration::days(1),
        79,
    );
    let bytes = serialized("Org1MSP", &soon);
    manager.validate(&bytes, net.now).expect("valid today");
    assert_eq!(manager.cached_identities(), 1);
    let later = net.now + 2 * 86_400;
    assert!(matches!(
        manager.validate(&bytes, later),
        Err(IdentityError::Expired { .. })
    ));
}

#[test]
fn a_not_yet_valid_certificate_is_refused() {
    let net = network();
    let start = OffsetDateTime::now_utc() + Duration::days(2);
    let cert = client_cert(
        &net.ca("org1.example.com"),
        start,
        start + Duration::days(2),
        80,
    );
    let error = net
        .manager()
        .validate(&serialized("Org1MSP", &cert), net.now)
        .expect_err("future");
    assert!(
        matches!(error, IdentityError::NotYetValid { .. }),
        "{error:?}"
    );
}

#[test]
fn a_revoked_certificate_is_refused() {
    let net = network();
    let ca = net.ca("org1.example.com");
    let now = OffsetDateTime::now_utc();
    let cert = client_cert(&ca, now - Duration::hours(1), now + Duration::days(1), 4242);
    let mut config =
        msp_dir::load_msp_config(&net.org_dir("org1.example.com").join("msp"), "Org1MSP")
            .expect("msp");
    config.revocation_list.push(crl_pem(&ca, &[4242]));
    let manager = MspManager::new(
        [Msp::from_config(&config).expect("msp with crl")],
        MspManagerConfig::default(),
    );
    let error = manager
        .validate(&serialized("Org1MSP", &cert), net.now)
        .expect_err("revoked");
    assert!(matches!(error, IdentityError::Revoked { .. }), "{error:?}");
    // Others of the same CA are unaffected.
    let user = net.user("org1.example.com", "User1", "Org1MSP");
    manager
        .validate(&user.serialized(), net.now)
        .expect("not revoked");
}

#[test]
fn local_revocation_lists_refuse_an_identity_validated_before_and_can_be_lifted() {
    let net = network();
    let ca = net.ca("org1.example.com");
    let now = OffsetDateTime::now_utc();
    let cert = client_cert(&ca, now - Duration::hours(1), now + Duration::days(1), 4343);
    let manager = net.manager();
    let identity = serialized("Org1MSP", &cert);
    manager.validate(&identity, net.now).expect("valid before");
    assert_eq!(manager.cached_identities(), 1);

    // A list of org1's CA applies; one of a CA outside the channel does not.
    let outsider = {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "elsewhere");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Issuer::new(params, key)
    };
    let outcome = manager.set_local_revocation_lists(&[
        crl_pem(&ca, &[4343]),
        crl_pem(&outsider, &[4343]),
        b"not a crl".to_vec(),
    ]);
    assert_eq!(outcome.applied, 1);
    assert_eq!(outcome.serials, 1);
    assert_eq!(outcome.skipped.len(), 1, "{:?}", outcome.skipped);
    let error = manager
        .validate(&identity, net.now)
        .expect_err("revoked, though cached before");
    assert!(matches!(error, IdentityError::Revoked { .. }), "{error:?}");
    manager
        .validate(
            &net.user("org1.example.com", "User1", "Org1MSP")
                .serialized(),
            net.now,
        )
        .expect("others unaffected");

    // Taking the list away lifts the revocation.
    manager.set_local_revocation_lists(&[]);
    manager.validate(&identity, net.now).expect("valid again");
}

#[test]
fn a_revocation_list_from_a_foreign_ca_is_refused() {
    let net = network();
    let mut config =
        msp_dir::load_msp_config(&net.org_dir("org1.example.com").join("msp"), "Org1MSP")
            .expect("msp");
    config
        .revocation_list
        .push(crl_pem(&net.ca("org2.example.com"), &[]));
    assert!(matches!(
        Msp::from_config(&config),
        Err(MspError::RevocationListNotTrusted { .. })
    ));
}

#[test]
fn high_s_and_tampered_signatures_are_refused_distinctly() {
    let net = network();
    let user = net.user("org1.example.com", "User1", "Org1MSP");
    let identity = net
        .manager()
        .validate(&user.serialized(), net.now)
        .expect("valid");
    let signature = user.sign(b"transfer asset1 to Bob").expect("sign");
    assert_eq!(
        identity.verify(b"transfer asset1 to Eve", &signature),
        Err(SignatureError::Mismatch)
    );
    let twin = high_s_twin(&signature).expect("twin");
    assert_eq!(
        identity.verify(b"transfer asset1 to Bob", &twin),
        Err(SignatureError::HighS)
    );
    let other = net.user("org2.example.com", "User1", "Org2MSP");
    let foreign = other.sign(b"transfer asset1 to Bob").expect("sign");
    assert_eq!(
        identity.verify(b"transfer asset1 to Bob", &foreign),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn malformed_identities_are_refused() {
    let net = network();
    let manager = net.manager();
    assert!(matches!(
        manager.validate(b"\xff\xff\xff", net.now),
        Err(IdentityError::Malformed(_))
    ));
    let no_cert = serialized("Org1MSP", "not a certificate");
    assert!(matches!(
        manager.validate(&no_cert, net.now),
        Err(IdentityError::BadCertificate { .. })
    ));
    // A CA certificate cannot sign transactions as a member.
    let ca_pem = read(
        &net.org_dir("org1.example.com")
            .join("ca/ca.org1.example.com-cert.pem"),
    );
    let error = manager
        .validate(&serialized("Org1MSP", &ca_pem), net.now)
        .expect_err("ca");
    assert!(
        matches!(error, IdentityError::CertificateAuthorityAsIdentity { .. }),
        "{error:?}"
    );
}

#[test]
fn a_certificate_without_a_node_ou_is_refused() {
    let net = network();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec![]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "nobody@org1.example.com");
    let cert = params
        .signed_by(&key, &net.ca("org1.example.com"))
        .expect("cert")
        .pem();
    let error = net
        .manager()
        .validate(&serialized("Org1MSP", &cert), net.now)
        .expect_err("no role");
    assert!(
        matches!(error, IdentityError::NoNodeRole { .. }),
        "{error:?}"
    );
}

#[test]
fn msp_definitions_are_checked() {
    let net = network();
    let mut config =
        msp_dir::load_msp_config(&net.org_dir("org1.example.com").join("msp"), "Org1MSP")
            .expect("msp");
    config.root_certs.clear();
    assert_eq!(
        Msp::from_config(&config).unwrap_err(),
        MspError::NoRootCertificate {
            msp_id: "Org1MSP".into()
        }
    );

    // A leaf certificate cannot be a root.
    let user_pem = net
        .user("org1.example.com", "User1", "Org1MSP")
        .certificate_pem()
        .to_vec();
    config.root_certs = vec![user_pem];
    assert!(matches!(
        Msp::from_config(&config),
        Err(MspError::NotACertificateAuthority { .. })
    ));
}
