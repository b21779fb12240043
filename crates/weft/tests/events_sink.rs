//! `weft events sink` against a real PostgreSQL (Debian's, started by the
//! test with initdb and pg_ctl in a temporary directory on a free port) and
//! a real `weft up` network: killed with SIGKILL at random moments, with
//! PostgreSQL crashed and restarted under it, the tables end equal to the
//! ledger, read back through the peer.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{WEFT, alive, free_port, metric, network_blocks, one_orderer_spec_with};
use weft_protos::Message;
use weft_protos::peer::{ChaincodeEvent, TxValidationCode};

/// A PostgreSQL server of the test's own: data, socket and log in a
/// temporary directory, TCP on 127.0.0.1 only, trust authentication for
/// the `weft` superuser.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Root runs the server as the `postgres` user: initdb refuses root.
    as_user: Option<&'static str>,
    /// TLS on, with `server.crt`/`server.key` in the data directory.
    ssl: bool,
}

impl Postgres {
    fn start() -> Postgres {
        let pg = Postgres::initialized();
        pg.pg_ctl_start();
        pg
    }

    /// A server that takes TCP connections over TLS only, its certificate
    /// (for 127.0.0.1) issued by a CA of the test's; returns the CA's PEM.
    fn start_tls() -> (Postgres, String) {
        let mut pg = Postgres::initialized();
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        let data = PathBuf::from(pg.data());
        std::fs::write(data.join("server.crt"), server.pem()).expect("server.crt");
        std::fs::write(data.join("server.key"), key.serialize_pem()).expect("server.key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        let mut perms = std::fs::metadata(data.join("server.key"))
            .expect("key")
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(data.join("server.key"), perms).expect("chmod");
        if pg.as_user.is_some() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .arg(data.join("pg_hba.conf"))
                .status()
                .expect("chown");
            assert!(status.success());
        }
        pg.ssl = true;
        pg.pg_ctl_start();
        (pg, ca.pem())
    }

    fn initialized() -> Postgres {
        let bin = postgres_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no pg_ctl in /usr/lib/postgresql/*/bin or on PATH): \
                 run compat/install.sh, which installs Debian's postgresql"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
            == 0;
        let as_user = root.then_some("postgres");
        if root {
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data directory to postgres");
        }
        let pg = Postgres {
            dir,
            bin,
            port: free_port(),
            as_user,
            ssl: false,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "weft",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", text(&out));
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match self.as_user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }

    fn pg_ctl_start(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if self.ssl {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = self.dir.path().join("postgres.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server as a crash would (`-m immediate`: no shutdown
    /// checkpoint, connections cut).
    fn crash(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://weft@127.0.0.1:{}/{database}", self.port)
    }

    /// The rows of `query`, each a list of columns as psql prints them.
    fn query(&self, database: &str, query: &str) -> Vec<Vec<String>> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-F", "\u{1f}", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "weft",
            ])
            .args(["-d", database, "-c", query])
            .stdin(Stdio::null())
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {query}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\u{1f}').map(str::to_owned).collect())
            .collect()
    }

    fn number(&self, database: &str, query: &str) -> i64 {
        self.query(database, query)[0][0]
            .parse()
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

/// pg_ctl's directory: Debian's newest version, else the one on PATH.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("pg_ctl").is_file()))
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `weft up` network in the test's own directory, stopped at the end.
struct Net {
    dir: tempfile::TempDir,
    spec: PathBuf,
}

impl Net {
    fn up() -> Net {
        Net::up_with("")
    }

    /// A network whose spec ends with `extra` (YAML).
    fn up_with(extra: &str) -> Net {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, one_orderer_spec_with("sink", "200ms", extra)).expect("spec");
        let net = Net { dir, spec };
        net.ok(&["up", &net.spec.display().to_string()]);
        net
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WEFT);
        command
            .args(args)
            .arg("--dir")
            .arg(self.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run weft");
        assert!(out.status.success(), "weft {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The sink as a child process, its output in `log`.
    fn sink(&self, url: &str, extra: &[&str], log: &Path) -> SinkProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("sink log");
        let mut args = vec!["events", "sink", "--postgres", url];
        args.extend_from_slice(extra);
        SinkProcess(
            self.command(&args)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start the sink"),
        )
    }

    /// Runs the sink to the head (`--until-caught-up`).
    fn catch_up(&self, url: &str, extra: &[&str]) -> Output {
        let mut args = vec!["events", "sink", "--postgres", url, "--until-caught-up"];
        args.extend_from_slice(extra);
        self.command(&args).output().expect("run the sink")
    }

    /// Every block of mychannel, read through Org1's peer as User1.
    fn blocks(&self) -> Vec<weft_protos::common::Block> {
        network_blocks(&self.path(), "mychannel")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.command(&["down"]).output();
    }
}

/// A sink process, killed (SIGKILL) when dropped: a failing test leaves
/// none behind.
struct SinkProcess(Child);

impl SinkProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// xorshift: random moments from a seed the test prints.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// GET on the sink's operations port: (status, body).
fn operations_get(port: u16, path: &str) -> (u16, String) {
    weft_network::monitor::http_get(&format!("127.0.0.1:{port}"), path).expect("operations")
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A transaction's place: (block, index).
type TxKey = (i64, i64);

/// Writes by (block, transaction index, write index): namespace, key,
/// is_delete, value in hex.
type Writes = BTreeMap<(i64, i64, i64), (String, String, bool, String)>;

#[test]
fn the_sink_writes_each_block_once_through_kills_and_a_postgres_crash() {
    let pg = Postgres::start();
    for database in ["reporting", "early", "filtered"] {
        pg.query("postgres", &format!("CREATE DATABASE {database}"));
    }
    let net = Net::up();
    let work = net.dir.path().to_path_buf();

    // The channel as deployed (genesis, approvals, commit): into "early",
    // kept to recognise this chain later.
    let early = net.catch_up(&pg.url("early"), &[]);
    assert!(early.status.success(), "{}", text(&early));
    assert!(
        text(&early).contains("schema: applied migration(s) [1]"),
        "{}",
        text(&early)
    );
    let early_checkpoint = pg.number("early", "SELECT block_number FROM checkpoints");
    assert!(early_checkpoint >= 2, "{}", text(&early));

    // Traffic: the sample's assets, then hot keys at a steady 60 a second
    // for about as long as the kills take (MVCC conflicts: invalid
    // transactions in the blocks), while the sink is killed and PostgreSQL
    // crashes.
    net.ok(&["chaincode", "invoke", "basic", "InitLedger"]);
    let traffic = {
        let mut command = net.command(&[
            "bench",
            "submit",
            "--workload",
            "hot",
            "--keys",
            "4",
            "--count",
            "900",
            "--rate",
            "60",
            "--warmup",
            "0s",
        ]);
        std::thread::spawn(move || command.output().expect("bench"))
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("kill moments from seed {seed}");
    let mut random = Random(seed);
    let log = work.join("sink.log");
    let operations = free_port();
    let ops = format!("127.0.0.1:{operations}");
    let sink_args = ["--operations", ops.as_str()];
    let url = pg.url("reporting");
    let mut kills = 0;
    let mut crashed = false;
    while kills < 12 {
        // Small batches some of the time, so that a kill may fall between
        // the transactions of a catch-up.
        let batch = (1 + random.below(4)).to_string();
        let mut args = sink_args.to_vec();
        args.extend(["--batch-blocks", batch.as_str()]);
        let mut sink = net.sink(&url, &args, &log);
        std::thread::sleep(Duration::from_millis(150 + random.below(900)));
        if kills == 6 && !crashed {
            // PostgreSQL crashes under a running sink, stays down for a
            // while, and comes back: the sink waits, says so, resumes.
            pg.crash();
            // A block the sink must write, whatever the traffic is doing.
            net.ok(&[
                "chaincode",
                "invoke",
                "basic",
                "CreateAsset",
                "during-crash",
                "red",
                "1",
                "Ann",
                "1",
            ]);
            std::thread::sleep(Duration::from_secs(3));
            assert!(
                sink.running(),
                "the sink keeps running while PostgreSQL is down:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                said.contains("retrying in"),
                "the sink says it retries:\n{said}"
            );
            let (status, health) = operations_get(operations, "/healthz");
            assert!(status == 503 && health.contains("postgres"), "{health}");
            pg.pg_ctl_start();
            crashed = true;
            std::thread::sleep(Duration::from_millis(random.below(2000)));
        }
        sink.kill();
        kills += 1;
    }
    let bench = traffic.join().expect("traffic");
    assert!(bench.status.success(), "bench: {}", text(&bench));
    net.ok(&["chaincode", "invoke", "basic", "DeleteAsset", "asset2"]);

    // A last sink follows to the head, and its metrics say so.
    let mut sink = net.sink(&url, &sink_args, &log);
    let blocks = net.blocks();
    let height = blocks.len() as i64;
    wait_for("the sink at the head", Duration::from_secs(60), || {
        pg.query("reporting", "SELECT block_number FROM checkpoints")
            .first()
            .is_some_and(|row| row[0] == (height - 1).to_string())
    });
    wait_for("the metrics", Duration::from_secs(10), || {
        let (_, metrics) = operations_get(operations, "/metrics");
        metric(
            &metrics,
            "weft_sink_checkpoint_block{channel=\"mychannel\"}",
        ) == Some((height - 1) as f64)
            && metric(&metrics, "weft_sink_blocks_behind{channel=\"mychannel\"}") == Some(0.0)
    });
    assert_eq!(operations_get(operations, "/healthz").0, 200);
    sink.kill();
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("resuming after block"), "{said}");

    // Every block once, chained, as the peer has them.
    let rows = pg.query(
        "reporting",
        "SELECT number, encode(hash, 'hex'), encode(previous_hash, 'hex'), tx_count FROM blocks ORDER BY number",
    );
    assert_eq!(rows.len() as i64, height, "one row per block");
    for (i, (row, block)) in rows.iter().zip(&blocks).enumerate() {
        let header = block.header.clone().unwrap_or_default();
        assert_eq!(row[0], i.to_string());
        assert_eq!(
            row[1],
            weft_protoutil::hex(&weft_protoutil::block_header_hash(&header))
        );
        assert_eq!(row[2], weft_protoutil::hex(&header.previous_hash));
        assert_eq!(
            row[3],
            weft_protoutil::block_envelopes(block).len().to_string()
        );
    }

    // Every transaction once, valid or marked with its code; every valid
    // transaction's writes once; its events.
    let mut ledger_txs: BTreeMap<TxKey, (String, String)> = BTreeMap::new();
    let mut ledger_writes: Writes = BTreeMap::new();
    let mut ledger_events = 0;
    let mut invalid = 0;
    for block in &blocks {
        let number = block.header.as_ref().map_or(0, |h| h.number) as i64;
        let filter = weft_protoutil::transactions_filter(block).unwrap_or_default();
        for (index, envelope) in weft_protoutil::block_envelopes(block).iter().enumerate() {
            let code = TxValidationCode::try_from(i32::from(filter[index])).expect("code");
            let parsed = weft_protoutil::parse_envelope(envelope).expect("envelope");
            ledger_txs.insert(
                (number, index as i64),
                (parsed.tx_id().to_owned(), code.as_str_name().to_owned()),
            );
            if code != TxValidationCode::Valid {
                invalid += 1;
                continue;
            }
            let Some(action) = parsed.action else {
                continue;
            };
            let mut write_index = 0;
            for namespace in &action.rwsets {
                for write in &namespace.rwset.writes {
                    ledger_writes.insert(
                        (number, index as i64, write_index),
                        (
                            namespace.namespace.clone(),
                            write.key.clone(),
                            write.is_delete,
                            weft_protoutil::hex(&write.value),
                        ),
                    );
                    write_index += 1;
                }
            }
            if ChaincodeEvent::decode(action.events.as_slice())
                .is_ok_and(|event| !event.event_name.is_empty())
            {
                ledger_events += 1;
            }
        }
    }
    assert!(
        invalid > 0,
        "the hot workload produced no invalid transaction"
    );
    eprintln!(
        "ledger: {height} blocks, {} transactions ({invalid} invalid), {} writes, {ledger_events} events; sink log:\n{said}",
        ledger_txs.len(),
        ledger_writes.len()
    );
    let sql_txs: BTreeMap<TxKey, (String, String)> = pg
        .query(
            "reporting",
            "SELECT block_number, tx_index, tx_id, validation_code, is_valid FROM transactions",
        )
        .into_iter()
        .map(|r| {
            assert_eq!(
                r[4] == "t",
                r[3] == "VALID",
                "is_valid matches the code: {r:?}"
            );
            (
                (r[0].parse().expect("block"), r[1].parse().expect("index")),
                (r[2].clone(), r[3].clone()),
            )
        })
        .collect();
    assert_eq!(sql_txs, ledger_txs, "transactions");
    assert!(
        sql_txs
            .values()
            .any(|(_, code)| code == "MVCC_READ_CONFLICT"),
        "conflicts are marked"
    );
    let sql_writes: Writes = pg
        .query(
            "reporting",
            "SELECT block_number, tx_index, write_index, namespace, key, is_delete, encode(value, 'hex') FROM writes",
        )
        .into_iter()
        .map(|r| {
            (
                (
                    r[0].parse().expect("block"),
                    r[1].parse().expect("index"),
                    r[2].parse().expect("write"),
                ),
                (r[3].clone(), r[4].clone(), r[5] == "t", r[6].clone()),
            )
        })
        .collect();
    assert_eq!(sql_writes, ledger_writes, "writes");
    assert_eq!(
        pg.number("reporting", "SELECT count(*) FROM chaincode_events"),
        ledger_events
    );

    // `state` is the peer's world state for the chaincode.
    let assets: Vec<serde_json::Value> =
        serde_json::from_str(&net.ok(&["chaincode", "query", "basic", "GetAllAssets"]))
            .expect("assets");
    let world: BTreeMap<String, serde_json::Value> = assets
        .into_iter()
        .map(|a| (a["ID"].as_str().expect("ID").to_owned(), a))
        .collect();
    let state: BTreeMap<String, serde_json::Value> = pg
        .query(
            "reporting",
            "SELECT key, value_json::text FROM state WHERE namespace = 'basic' AND collection = ''",
        )
        .into_iter()
        .map(|r| (r[0].clone(), serde_json::from_str(&r[1]).expect("json")))
        .collect();
    assert!(
        !world.contains_key("asset2") && world.len() >= 9,
        "{world:?}"
    );
    assert_eq!(state, world, "state equals the world state");

    // The README's example queries run and answer.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let sql = readme
        .split("```sql\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's SQL block");
    let queries: Vec<&str> = sql
        .split(';')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .collect();
    assert_eq!(queries.len(), 3, "{sql}");
    for query in queries {
        let rows = pg.query("reporting", query);
        assert!(
            !rows.is_empty(),
            "no rows from the README's query:\n{query}"
        );
    }

    // Filters: basic's transactions, UpdateAsset events, no writes; and the
    // peer and identity named as Fabric's CLI names them, as for a peer of
    // any Fabric network.
    let org1 = net
        .path()
        .join("organizations/peerOrganizations/org1.example.com");
    let dir = weft_network::NetworkDir::new(net.path());
    let (spec, _) = dir.load_spec().expect("spec");
    let peer = dir
        .nodes(&spec)
        .into_iter()
        .find(|n| n.name == "peer0.org1.example.com")
        .expect("peer")
        .address();
    let tls_ca = org1.join("tlsca/tlsca.org1.example.com-cert.pem");
    let msp = org1.join("users/User1@org1.example.com/msp");
    let filtered = net.catch_up(
        &pg.url("filtered"),
        &[
            "--peerAddresses",
            &peer,
            "--tlsRootCertFiles",
            tls_ca.to_str().expect("utf8"),
            "--mspConfigPath",
            msp.to_str().expect("utf8"),
            "--localMspId",
            "Org1MSP",
            "-C",
            "mychannel",
            "--chaincode",
            "basic",
            "--event",
            "UpdateAsset",
            "--no-writes",
        ],
    );
    assert!(filtered.status.success(), "{}", text(&filtered));
    assert!(
        text(&filtered).contains(&format!("following mychannel on {peer} as Org1MSP")),
        "{}",
        text(&filtered)
    );
    assert_eq!(
        pg.number("filtered", "SELECT count(*) FROM writes")
            + pg.number("filtered", "SELECT count(*) FROM state"),
        0
    );
    assert_eq!(
        pg.number("filtered", "SELECT count(*) FROM blocks"),
        height,
        "every block is still written"
    );
    assert_eq!(
        pg.number(
            "filtered",
            "SELECT count(*) FROM transactions WHERE chaincode IS DISTINCT FROM 'basic'"
        ),
        0
    );
    assert_eq!(
        pg.number("filtered", "SELECT count(*) FROM transactions"),
        pg.number(
            "reporting",
            "SELECT count(*) FROM transactions WHERE chaincode = 'basic'"
        )
    );
    assert_eq!(
        pg.number("filtered", "SELECT count(*) FROM chaincode_events"),
        pg.number(
            "reporting",
            "SELECT count(*) FROM chaincode_events WHERE name = 'UpdateAsset'"
        )
    );

    // Bad input: a database that does not exist is named, and not retried.
    let missing = net.catch_up(&pg.url("nope"), &[]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("database \"nope\" does not exist"),
        "{}",
        text(&missing)
    );
    assert!(!text(&missing).contains("retrying"), "{}", text(&missing));

    // The network created again under the same channel name: a database
    // of the old chain refuses it and is left as it was.
    net.ok(&["down", "--purge"]);
    net.ok(&["up", &net.spec.display().to_string()]);
    // Past the old checkpoint's block, whether the deploy took one block or
    // two, so the new chain's block there is compared, not missing.
    net.ok(&["chaincode", "invoke", "basic", "InitLedger"]);
    let other = net.catch_up(&pg.url("early"), &[]);
    assert!(!other.status.success(), "{}", text(&other));
    assert!(
        text(&other).contains("is not the chain written to PostgreSQL"),
        "{}",
        text(&other)
    );
    assert_eq!(
        pg.number("early", "SELECT block_number FROM checkpoints"),
        early_checkpoint
    );
    let behind = net.catch_up(&url, &[]);
    assert!(!behind.status.success(), "{}", text(&behind));
    assert!(
        text(&behind).contains("does not reach the checkpoint"),
        "{}",
        text(&behind)
    );
    assert_eq!(
        pg.number("reporting", "SELECT count(*) FROM blocks"),
        height
    );
}

/// `eventSinks:` in the spec: `weft up`'s supervisor runs the sink beside the
/// nodes, restarts it when it dies, `weft status` and `weft logs` show it,
/// and `weft down` stops it.
#[test]
fn weft_up_supervises_the_specs_event_sink() {
    let pg = Postgres::start();
    pg.query("postgres", "CREATE DATABASE reporting");
    let operations = free_port();
    let net = Net::up_with(&format!(
        "eventSinks:\n\
         \x20 - name: reporting\n\
         \x20   postgres: '{}'\n\
         \x20   organization: Org2\n\
         \x20   chaincodes: [basic]\n\
         \x20   operationsPort: {operations}\n",
        pg.url("reporting")
    ));
    let pid_file = net.path().join("sinks/reporting/pid");
    let pid = || -> Option<u32> {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    };
    let status = net.ok(&["status"]);
    assert!(
        status.contains("event sink reporting") && status.contains("mychannel into PostgreSQL"),
        "{status}"
    );

    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "a1",
        "blue",
        "5",
        "Tom",
        "100",
    ]);
    let assets = || {
        pg.number(
            "reporting",
            "SELECT count(*) FROM state WHERE namespace = 'basic'",
        )
    };
    wait_for(
        "the first asset in PostgreSQL",
        Duration::from_secs(60),
        || assets() == 1,
    );
    assert_eq!(
        pg.number(
            "reporting",
            "SELECT count(*) FROM transactions WHERE chaincode IS DISTINCT FROM 'basic'"
        ),
        0,
        "the spec's chaincode filter applies"
    );
    let (_, metrics) = operations_get(operations, "/metrics");
    assert!(
        metrics.contains("weft_sink_blocks_written_total"),
        "{metrics}"
    );
    let status = net.ok(&["status"]);
    assert!(
        status.contains("written, 0 behind; operations http://127.0.0.1:"),
        "weft status shows the sink's progress: {status}"
    );

    // Killed, it is started again and carries on.
    let first = pid().expect("the sink's pid");
    let killed = Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for(
        "the supervisor to restart the sink",
        Duration::from_secs(30),
        || pid().is_some_and(|p| p != first),
    );
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "a2",
        "red",
        "5",
        "Ann",
        "100",
    ]);
    wait_for(
        "the second asset in PostgreSQL",
        Duration::from_secs(60),
        || assets() == 2,
    );
    let supervisor = std::fs::read_to_string(net.path().join("supervisor.log")).unwrap_or_default();
    assert!(
        supervisor.contains("event sink reporting: exited"),
        "{supervisor}"
    );
    let log = net.ok(&["logs", "reporting"]);
    assert!(
        log.contains("following mychannel on peer0.org2.example.com"),
        "{log}"
    );

    // A spec without it: `weft up` with it stops the sink, the nodes run
    // on; the spec with it again starts it again.
    let second = pid().expect("pid");
    let with_sink = std::fs::read_to_string(&net.spec).expect("spec");
    let without = net.dir.path().join("without-sink.yaml");
    std::fs::write(
        &without,
        with_sink.split("eventSinks:").next().expect("spec"),
    )
    .expect("spec");
    net.ok(&["up", &without.display().to_string()]);
    wait_for("the removed sink to stop", Duration::from_secs(30), || {
        !alive(second)
    });
    let status = net.ok(&["status"]);
    assert!(!status.contains("into PostgreSQL"), "{status}");
    net.ok(&["up", &net.spec.display().to_string()]);
    wait_for("the sink to start again", Duration::from_secs(30), || {
        pid().is_some_and(alive)
    });
    let second = pid().expect("pid");

    // `weft down` stops it with the nodes.
    net.ok(&["down"]);
    assert!(!alive(second), "the sink stopped with the network");
}

/// TLS to PostgreSQL: a server that refuses unencrypted connections is
/// written to with `--postgres-ca` (its certificate verified); without it
/// the server's refusal is named; a CA that did not issue the server's
/// certificate fails the handshake, and neither is retried.
#[test]
fn the_sink_speaks_tls_to_postgresql() {
    let (pg, ca) = Postgres::start_tls();
    pg.query("postgres", "CREATE DATABASE reporting");
    let net = Net::up();
    let ca_file = net.dir.path().join("pg-ca.pem");
    std::fs::write(&ca_file, &ca).expect("ca");
    let url = format!("{}?sslmode=require", pg.url("reporting"));

    let plain = net.catch_up(&pg.url("reporting"), &[]);
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("no encryption") && !text(&plain).contains("retrying"),
        "{}",
        text(&plain)
    );

    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.self_signed(&rcgen::KeyPair::generate()?))
        .expect("another CA");
    let other_file = net.dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other.pem()).expect("ca");
    let untrusted = net.catch_up(&url, &["--postgres-ca", other_file.to_str().expect("utf8")]);
    assert!(!untrusted.status.success());
    assert!(
        text(&untrusted).contains("TLS handshake") && !text(&untrusted).contains("retrying"),
        "{}",
        text(&untrusted)
    );

    let done = net.catch_up(&url, &["--postgres-ca", ca_file.to_str().expect("utf8")]);
    assert!(done.status.success(), "{}", text(&done));
    let height = network_blocks(&net.path(), "mychannel").len() as i64;
    assert_eq!(
        pg.number("reporting", "SELECT count(*) FROM blocks"),
        height
    );
}
