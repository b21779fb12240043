//! `weft ca` against the official npm `fabric-ca-client`: enrolment,
//! registration with attributes, attribute requests, reenrolment,
//! revocation, CRLs, the identity, affiliation and certificate services,
//! Fabric CA's refusals — and nothing written for a refused request; and a
//! CA killed with SIGKILL in a burst of enrolments loses no acknowledged
//! certificate and hands out no serial twice.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::up::UpNetwork;
use support::{WEFT, free_port};
use x509_parser::prelude::{FromDer, X509Certificate};

struct Ca {
    home: tempfile::TempDir,
    port: u16,
    process: Option<Child>,
}

impl Ca {
    fn init() -> Self {
        let home = tempfile::tempdir().expect("home");
        let port = free_port();
        let out = Command::new(WEFT)
            .args([
                "ca",
                "init",
                "--ca.name",
                "ca-org1",
                "-p",
                &port.to_string(),
                "--home",
            ])
            .arg(home.path())
            .output()
            .expect("weft ca init");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ca = Ca {
            home,
            port,
            process: None,
        };
        ca.start();
        ca
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.home.path().join("ca.log")).expect("log");
        let child = Command::new(WEFT)
            .args(["ca", "start", "--home"])
            .arg(self.home.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("weft ca start");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "CA did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("ca.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn root(&self) -> PathBuf {
        self.home.path().join("ca-cert.pem")
    }

    fn client(&self, args: &[&str]) -> Command {
        let mut command = Command::new("node");
        command
            .current_dir(weft_compat::compat_dir())
            .arg(weft_compat::compat_dir().join("node/ca-client.mjs"))
            .arg(args[0])
            .arg(self.url())
            .arg(self.root())
            .arg("ca-org1")
            .args(&args[1..]);
        command
    }

    /// The registry as it is on disk (the CA stopped).
    fn store(&self) -> weft_ca::store::Store {
        weft_ca::store::Store::open(&self.home.path().join("ca-db")).expect("store")
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        self.kill();
    }
}

fn der(pem: &str) -> Vec<u8> {
    weft_crypto::pem::certificates(pem.as_bytes())
        .expect("pem")
        .remove(0)
}

fn attributes(pem: &str) -> serde_json::Value {
    let der = der(pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate");
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.2.3.4.5.6.7.8.1")
        .map(|e| serde_json::from_slice(e.value).expect("attribute JSON"))
        .unwrap_or(serde_json::Value::Null)
}

fn serial(pem: &str) -> String {
    let der = der(pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate");
    weft_ca::cert::fabric_hex(cert.raw_serial())
}

fn code(refusal: &serde_json::Value) -> i64 {
    assert_eq!(refusal["refused"], true, "{refusal}");
    refusal["errors"][0]["code"].as_i64().expect("code")
}

#[test]
fn fabric_ca_client_enrols_registers_revokes_and_is_refused_as_by_fabric_ca() {
    let mut ca = Ca::init();
    let out = ca.client(&["flow"]).output().expect("node");
    assert!(
        out.status.success(),
        "{}\nCA log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        ca.log()
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = |key: &str| {
        result[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {result}"))
            .to_owned()
    };

    assert_eq!(result["caName"], "ca-org1");
    assert_eq!(
        text("chain"),
        std::fs::read_to_string(ca.root()).expect("root")
    );

    // The subject carries Fabric CA's OUs (type, then affiliation levels);
    // the attribute extension exactly what was asked for.
    let user1 = der(&text("user1Cert"));
    let (_, cert) = X509Certificate::from_der(&user1).expect("user1");
    let units: Vec<&str> = cert
        .subject()
        .iter_organizational_unit()
        .map(|ou| ou.as_str().expect("ou"))
        .collect();
    assert_eq!(units, ["client", "org1", "department1"]);
    assert_eq!(
        attributes(&text("user1Cert")),
        serde_json::json!({"attrs": {"app.role": "auditor"}})
    );
    let msp_root = weft_crypto::pem::certificates(&std::fs::read(ca.root()).expect("root"))
        .expect("root pem")
        .remove(0);
    let (_, root) = X509Certificate::from_der(&msp_root).expect("root");
    cert.verify_signature(Some(root.public_key()))
        .expect("issued by the CA's root");
    // Without attribute requests: the attributes registered for certificates.
    assert_eq!(
        attributes(&text("user2Cert")),
        serde_json::json!({"attrs": {
            "email": "user2@org1",
            "hf.Affiliation": "org1",
            "hf.EnrollmentID": "user2",
            "hf.Type": "client",
        }})
    );

    let first = serial(&text("user1Cert"));
    let second = serial(&text("user1Reenrolled"));
    assert_ne!(first, second, "reenrolment issues a new certificate");
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(result["user1Certificates"], serde_json::json!(both));

    let user2_serial = serial(&text("user2Cert"));
    assert_eq!(
        result["revoked"]["RevokedCerts"][0]["Serial"],
        user2_serial.as_str()
    );
    for crl_pem in [
        String::from_utf8(
            weft_crypto::pem::unbase64(result["revoked"]["CRL"].as_str().expect("crl"))
                .expect("base64"),
        )
        .expect("utf8"),
        text("crl"),
    ] {
        let crl_der = weft_crypto::pem::blocks(crl_pem.as_bytes())
            .expect("crl pem")
            .remove(0)
            .der;
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl_der)
            .expect("crl");
        crl.verify_signature(root.public_key())
            .expect("CRL signed by the CA");
        let listed: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| weft_ca::cert::fabric_hex(r.raw_serial()))
            .collect();
        assert_eq!(listed, std::slice::from_ref(&user2_serial));
    }

    assert_eq!(
        result["identities"],
        serde_json::json!(["admin", "user1", "user2"])
    );
    assert_eq!(result["user1Info"]["affiliation"], "org1.department1");
    assert_eq!(result["createdSecret"], "user3pw");
    assert_eq!(result["updated"]["max_enrollments"], 5);
    assert_eq!(
        result["affiliationsBefore"]["affiliations"][0]["name"],
        "org1"
    );
    assert_eq!(
        result["org3"]["affiliations"][0]["name"],
        "org3.department1"
    );

    // Fabric CA's codes: 20 authentication, 71 authorisation, 31 bad CSR,
    // 52 duplicate identity, 19 unknown CA.
    for (case, expected) in [
        ("wrongSecret", 20),
        ("unknownUser", 20),
        ("overLimit", 20),
        ("forgedToken", 20),
        ("revokedCaller", 20),
        ("notRegistrar", 71),
        ("unregistrableAttribute", 71),
        ("noGenCrl", 71),
        ("noRevoker", 71),
        ("malformedCsr", 31),
        ("duplicate", 52),
        ("wrongCa", 19),
        ("missingAttribute", 0),
    ] {
        assert_eq!(code(&result[case]), expected, "{case}: {}", result[case]);
    }

    // Without a client library: what is not provided says so, a wrong
    // method is Fabric CA's code 1, and the endpoints answer at the top too.
    assert_eq!(result["idemix"]["status"], 404);
    assert!(
        result["idemix"]["body"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Idemix")),
        "{}",
        result["idemix"]
    );
    assert_eq!(result["methodNotAllowed"]["status"], 405);
    assert_eq!(result["methodNotAllowed"]["body"]["errors"][0]["code"], 1);
    assert_eq!(result["cainfoAtTop"]["status"], 200);
    assert_eq!(result["cainfoAtTop"]["body"]["result"]["CAName"], "ca-org1");

    // Nothing was written for the refused requests: four certificates
    // (admin, user1, user2, user1 again), no user4/5/6, user1 enrolled once.
    ca.kill();
    let store = ca.store();
    assert_eq!(store.certificates().expect("certs").len(), 4);
    let names: Vec<String> = store
        .identities()
        .expect("identities")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["admin", "user1", "user2", "user3"]);
    let user1 = store.identity("user1").expect("read").expect("user1");
    assert_eq!(user1.enrollments, 1);
    assert!(!user1.secret.contains("user1"), "secrets are stored hashed");
    assert!(
        store
            .identity("user2")
            .expect("read")
            .expect("user2")
            .revoked
    );
}

fn burst(ca: &Ca, count: usize, stop_after: Option<usize>) -> (Vec<String>, Child) {
    let mut child = ca
        .client(&["burst", &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let stdout = child.stdout.take().expect("stdout");
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        acknowledged.push(line);
        if stop_after.is_some_and(|n| acknowledged.len() >= n) {
            break;
        }
    }
    (acknowledged, child)
}

#[test]
fn a_ca_killed_during_an_enrolment_burst_loses_nothing_acknowledged_and_repeats_no_serial() {
    let mut ca = Ca::init();
    let (mut acknowledged, mut client) = burst(&ca, 400, Some(60));
    ca.kill();
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(acknowledged.len(), 60);

    ca.start();
    let (after, mut client) = burst(&ca, 40, None);
    assert!(client.wait().expect("node").success(), "{}", ca.log());
    assert_eq!(after.len(), 40);
    acknowledged.extend(after);
    ca.kill();

    let distinct: BTreeSet<&String> = acknowledged.iter().collect();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "a serial was handed out twice"
    );
    let stored: BTreeSet<String> = ca
        .store()
        .certificates()
        .expect("certificates")
        .into_iter()
        .map(|c| c.serial)
        .collect();
    let lost: Vec<&&String> = distinct.iter().filter(|s| !stored.contains(**s)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

fn node_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new("node")
        .current_dir(weft_compat::compat_dir())
        .arg(weft_compat::compat_dir().join("node/ca-gateway.mjs"))
        .args(args)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "ca-gateway.mjs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `certificateAuthorities: true`: `weft up` runs a CA per organisation and
/// enrols every node, admin and user through it; a user registered and
/// enrolled later with fabric-ca-client submits through the official
/// gateway client at once, and the chaincode (fabric-shim's
/// `ClientIdentity`) reads the attribute the CA put in its certificate;
/// once revoked and the CRL in the peers' MSPs, the user is refused.
#[test]
fn a_network_of_ca_issued_identities_admits_new_users_and_refuses_revoked_ones() {
    let compat = weft_compat::compat_dir();
    let (peer1, peer2, orderer) = (free_port(), free_port(), free_port());
    let (ca1, ca2, ca_orderer) = (free_port(), free_port(), free_port());
    let ca1_operations = free_port();
    let spec = format!(
        "name: with-cas\n\
         certificateAuthorities: true\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{peer1}], caPort: {ca1}, caOperationsPort: {ca1_operations}}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{peer2}], caPort: {ca2}}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com, caPort: {ca_orderer}}}\n\
         \x20 nodes: 1\n\
         \x20 ports: [{orderer}]\n\
         chaincodes:\n\
         \x20 - name: assets\n\
         \x20   launcher:\n\
         \x20     process:\n\
         \x20       command: [{cli}, start, --peer.address, \"{{peer_address}}\"]\n\
         \x20       dir: {dir}\n",
        cli = compat
            .join("node_modules/.bin/fabric-chaincode-node")
            .display(),
        dir = compat.join("node/chaincode").display(),
    );
    let network = UpNetwork::up(&spec, &[]);
    let described = Command::new(WEFT)
        .arg("validate")
        .arg(network.dir.path().join("spec.yaml"))
        .output()
        .expect("weft validate");
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains(&format!("ca-org1      https://localhost:{ca1}")),
        "{described}"
    );

    // The MSPs are rooted in the CAs: Fabric's files, and every identity on
    // the CA's record.
    let organizations = network.path().join("organizations");
    let ca_root =
        std::fs::read_to_string(organizations.join("fabric-ca/org1/ca-cert.pem")).expect("CA root");
    assert!(organizations.join("fabric-ca/org1/tls-cert.pem").is_file());
    let org1 = organizations.join("peerOrganizations/org1.example.com");
    assert_eq!(
        std::fs::read_to_string(org1.join("msp/cacerts/ca.org1.example.com-cert.pem"))
            .expect("org MSP root"),
        ca_root
    );
    let peer_cert =
        std::fs::read_to_string(org1.join("peers/peer0.org1.example.com/msp/signcerts/cert.pem"))
            .expect("peer cert");
    let root_der = der(&ca_root);
    let (_, root) = X509Certificate::from_der(&root_der).expect("root");
    let peer_der = der(&peer_cert);
    let (_, peer) = X509Certificate::from_der(&peer_der).expect("peer");
    peer.verify_signature(Some(root.public_key()))
        .expect("the peer's certificate is issued by ca-org1");
    assert_eq!(
        attributes(&peer_cert)["attrs"]["hf.Type"],
        "peer",
        "enrolled through the CA, with its attributes"
    );

    let out = network.dir.path().join("appuser");
    std::fs::create_dir_all(&out).expect("out");
    let ca_url = format!("https://localhost:{ca1}");
    let root_path = organizations.join("fabric-ca/org1/ca-cert.pem");
    let enrolled = node_json(&[
        "enrol".as_ref(),
        ca_url.as_ref(),
        root_path.as_os_str(),
        "ca-org1".as_ref(),
        out.as_os_str(),
    ]);
    for identity in [
        "Admin@org1.example.com:admin",
        "User1@org1.example.com:client",
        "peer0.org1.example.com:peer",
        "admin:client",
        "appuser:client",
    ] {
        assert!(
            enrolled["identities"]
                .as_array()
                .expect("identities")
                .iter()
                .any(|i| i == identity),
            "{identity} not on ca-org1's record: {enrolled}"
        );
    }

    let endpoint = format!("127.0.0.1:{peer1}");
    let tls_ca = org1.join("peers/peer0.org1.example.com/tls/ca.crt");
    let use_it = || {
        node_json(&[
            "use".as_ref(),
            endpoint.as_ref(),
            tls_ca.as_os_str(),
            "Org1MSP".as_ref(),
            out.as_os_str(),
            "mychannel".as_ref(),
            "assets".as_ref(),
        ])
    };
    let used = use_it();
    for phase in ["submitted", "evaluated"] {
        let answer: serde_json::Value = serde_json::from_str(
            used[phase]["ok"]
                .as_str()
                .unwrap_or_else(|| panic!("{phase}: {used}")),
        )
        .expect("chaincode JSON");
        assert_eq!(answer["mspId"], "Org1MSP");
        assert_eq!(answer["value"], "auditor", "{phase}: {answer}");
        assert!(
            answer["id"].as_str().expect("id").contains("CN=appuser"),
            "{answer}"
        );
    }

    // Revoked at the CA: still admitted until the peers hold the CRL...
    let revoked = node_json(&[
        "revoke".as_ref(),
        ca_url.as_ref(),
        root_path.as_os_str(),
        "ca-org1".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        revoked["revoked"].as_array().map(Vec::len),
        Some(1),
        "{revoked}"
    );
    let crl = std::fs::read(out.join("crl.pem")).expect("crl");
    assert!(use_it()["evaluated"]["ok"].is_string(), "no CRL yet");
    let appuser = weft_material::SigningIdentity::from_files(
        &out.join("cert.pem"),
        &out.join("key.pem"),
        "Org1MSP",
    )
    .expect("appuser");
    let orderer_tls =
        organizations.join("ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem");
    let orderer_endpoint = format!("127.0.0.1:{orderer}");
    orderer_deliver(&orderer_endpoint, &orderer_tls, &appuser)
        .expect("the orderer serves the user before it holds the CRL");
    // ...then refused by every node whose local MSP has it, with no restart.
    for peer_msp in [
        org1.join("peers/peer0.org1.example.com/msp"),
        organizations.join("peerOrganizations/org2.example.com/peers/peer0.org2.example.com/msp"),
        organizations.join("ordererOrganizations/example.com/orderers/orderer.example.com/msp"),
    ] {
        std::fs::create_dir_all(peer_msp.join("crls")).expect("crls");
        std::fs::write(peer_msp.join("crls/ca-org1-crl.pem"), &crl).expect("crl");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let used = use_it();
        if used["evaluated"]["error"].is_object() {
            break used;
        }
        assert!(Instant::now() < deadline, "still admitted: {used}");
        std::thread::sleep(Duration::from_millis(500));
    };
    for phase in ["submitted", "evaluated"] {
        let message = refused[phase]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
            + &refused[phase]["error"]["details"].to_string();
        assert!(message.contains("revoked"), "{phase}: {refused}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        match orderer_deliver(&orderer_endpoint, &orderer_tls, &appuser) {
            Err(refusal) => break refusal,
            Ok(()) => {
                assert!(
                    Instant::now() < deadline,
                    "the orderer still serves the revoked user"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    assert!(refusal.contains("Forbidden"), "{refusal}");
    // The CAs are nodes of the network like the others.
    let text = network.ok(&["status"]);
    assert!(
        text.lines()
            .any(|l| l.contains("ca-org1") && l.contains(" up (CA of Org1MSP)")),
        "{text}"
    );
    let text = network.ok(&["logs", "ca-org1"]);
    assert!(text.contains("POST /api/v1/revoke 200"), "{text}");
    // ... with an operations service: health and Fabric CA's request metrics.
    let operations = format!("127.0.0.1:{ca1_operations}");
    let (status, body) = weft_network::monitor::http_get(&operations, "/healthz").expect("healthz");
    assert_eq!(status, 200, "{body}");
    let (status, metrics) =
        weft_network::monitor::http_get(&operations, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let enrolled = support::metric(
        &metrics,
        "api_request_count{ca_name=\"ca-org1\",api_name=\"enroll\",status_code=\"200\"}",
    );
    assert!(enrolled.is_some_and(|n| n >= 2.0), "{metrics}");
    assert!(
        metrics.contains("api_request_duration_bucket{ca_name=\"ca-org1\",api_name=\"revoke\"")
    );
}

/// Block 0 of `mychannel` from the orderer at `endpoint`, as `identity`:
/// Ok if the orderer sends it, the Fabric status it answers otherwise.
fn orderer_deliver(
    endpoint: &str,
    tls_ca: &std::path::Path,
    identity: &weft_material::SigningIdentity,
) -> Result<(), String> {
    use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
    use weft_protos::orderer::deliver_response::Type;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
            .expect("endpoint")
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(
                        std::fs::read(tls_ca).expect("tls ca"),
                    ))
                    .domain_name("127.0.0.1"),
            )
            .expect("tls")
            .connect()
            .await
            .expect("connect");
        let seek = weft_node::seek::seek_envelope(
            identity,
            "mychannel",
            weft_node::seek::specified(0),
            weft_node::seek::specified(0),
            weft_protos::orderer::seek_info::SeekBehavior::BlockUntilReady,
        )
        .expect("seek");
        let mut stream = AtomicBroadcastClient::new(channel)
            .deliver(tokio_stream::iter([seek]))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        match stream.message().await.map_err(|e| e.to_string())? {
            Some(response) => match response.r#type {
                Some(Type::Block(_)) => Ok(()),
                Some(Type::Status(code)) => {
                    Err(format!("{:?}", weft_protos::common::Status::try_from(code)))
                }
                other => Err(format!("{other:?}")),
            },
            None => Err("the stream ended".into()),
        }
    })
}
