//! Crash safety: a child process commits blocks as fast as it can and is
//! killed with SIGKILL at random moments, 50 times. After every kill the
//! ledger reopens to a prefix of the blocks written, its state and history
//! equal the reference model replaying those blocks, and no block the child
//! acknowledged is missing.
//!
//! A test without the libtest harness: the same binary is the child when
//! `WEFT_LEDGER_CRASH_CHILD` is set.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use weft_ledger::{Ledger, LedgerConfig};
use weft_protos::kvrwset::KvrwSet;
use weft_protoutil::{block_header_hash, parse_envelope, transactions_filter};
use weft_testkit::{Chain, TestNetwork};

const CHILD: &str = "WEFT_LEDGER_CRASH_CHILD";
const ROUNDS: usize = 50;
const TXS_PER_BLOCK: u64 = 4;

/// The deterministic rwset of transaction `tx` in block `number`.
fn rwset(number: u64, tx: u64) -> KvrwSet {
    let key = |i: u64| format!("k{}", i % 10);
    let mut rwset = writes(&[(&key(number * 3 + tx), format!("{number}:{tx}").as_bytes())]);
    if tx == 3 {
        // Claims the key is absent: valid only while it is.
        rwset.reads.push(read(&key(number + 5), None));
    }
    if number % 5 == 4 && tx == 0 {
        rwset.writes.push(delete(&key(number + 1)));
    }
    rwset
}

fn child(dir: &Path) {
    let network = TestNetwork::in_dir(&dir.join("organizations"));
    let mut fixture_submitter = network.submitter(CHANNEL);
    let msp = network.msp_manager(Default::default());
    let mut policies = weft_ledger::EndorsementPolicies::new();
    policies.set(
        CHAINCODE,
        weft_policy::SignaturePolicy::parse("AND('Org1MSP.peer', 'Org2MSP.peer')").expect("policy"),
    );
    let signatures = weft_ledger::SignatureCache::new(0);
    let validator = weft_ledger::Validator {
        msp: &msp,
        policies: &policies,
        signatures: &signatures,
        threads: 2,
    };
    let (ledger, _) =
        Ledger::open(&dir.join("ledger"), CHANNEL, LedgerConfig::default()).expect("open");
    let height = ledger.height().expect("height");
    let mut chain = match height {
        0 => Chain::default(),
        _ => Chain::after(height - 1, ledger.last_block_hash()),
    };
    let stdout = std::io::stdout();
    for number in height..height + 10_000 {
        let envelopes = (0..TXS_PER_BLOCK)
            .map(|tx| {
                let mut builder =
                    fixture_submitter.builder(CHAINCODE, vec![ns(CHAINCODE, rwset(number, tx))]);
                builder.nonce = [number.to_be_bytes(), tx.to_be_bytes(), [7; 8]].concat();
                fixture_submitter.sign(&builder)
            })
            .collect();
        ledger
            .commit(chain.block(envelopes), &validator)
            .expect("commit");
        let mut out = stdout.lock();
        writeln!(out, "committed {number}").expect("stdout");
        out.flush().expect("flush");
    }
}

struct Verified {
    height: u64,
    last_hash: Vec<u8>,
    model: Model,
}

/// Checks the reopened ledger: a continuation of what was verified before,
/// each block as written, state and history as the model says.
fn verify(dir: &Path, verified: &mut Verified, acknowledged: Option<u64>) {
    let (ledger, report) = Ledger::open(&dir.join("ledger"), CHANNEL, LedgerConfig::default())
        .expect("reopen after kill");
    let height = ledger.height().expect("height");
    if let Some(acknowledged) = acknowledged {
        assert!(
            height > acknowledged,
            "block {acknowledged} was acknowledged but height is {height} ({report:?})"
        );
    }
    assert!(
        height >= verified.height,
        "the ledger shrank from {} to {height}",
        verified.height
    );
    for number in verified.height..height {
        let block = ledger.block(number).expect("block");
        let header = block.header.as_ref().expect("header");
        assert_eq!(
            header.previous_hash, verified.last_hash,
            "block {number} does not chain"
        );
        let envelopes = &block.data.as_ref().expect("data").data;
        assert_eq!(envelopes.len() as u64, TXS_PER_BLOCK);
        let mut txs = Vec::new();
        for (tx, envelope) in envelopes.iter().enumerate() {
            let parsed = parse_envelope(envelope).expect("parse");
            let action = parsed.action.as_ref().expect("action");
            assert_eq!(
                action.rwsets[0].rwset,
                rwset(number, tx as u64),
                "block {number} tx {tx}"
            );
            txs.push((parsed.tx_id().to_string(), action.rwsets[0].rwset.clone()));
        }
        let expected = verified.model.apply_block(number, &txs);
        let codes: Vec<u8> = expected.iter().map(|code| *code as i32 as u8).collect();
        assert_eq!(
            transactions_filter(&block),
            Some(codes.as_slice()),
            "codes of block {number}"
        );
        verified.last_hash = block_header_hash(header).to_vec();
    }
    verified.height = height;
    verified.model.assert_matches(&ledger);
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|filter| "kill_nine_at_random_moments".contains(filter.as_str()))
    {
        return;
    }
    println!("running 1 test");
    let dir = tempfile::tempdir().expect("dir");
    TestNetwork::in_dir(&dir.path().join("organizations"));
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    println!("kill_nine_at_random_moments: seed {seed}");
    let mut verified = Verified {
        height: 0,
        last_hash: Vec::new(),
        model: Model::default(),
    };
    let executable = std::env::current_exe().expect("own executable");
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 400);
        let mut process = Command::new(&executable)
            .env(CHILD, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        std::thread::sleep(delay);
        process.kill().expect("SIGKILL");
        let output = process.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("panicked"),
            "round {round}: the child failed:\n{stderr}"
        );
        let acknowledged = BufReader::new(output.stdout.as_slice())
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                line.strip_prefix("committed ")
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .last();
        verify(dir.path(), &mut verified, acknowledged);
    }
    println!(
        "test kill_nine_at_random_moments ... ok ({ROUNDS} kills, {} blocks survived)",
        verified.height
    );
    assert!(verified.height > 0, "the child never committed a block");
}
