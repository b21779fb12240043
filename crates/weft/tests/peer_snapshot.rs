//! Ledger snapshots on real `weft peer` processes with Fabric's commands:
//! `weft peer snapshot submitrequest|listpending|cancelrequest` as an
//! organisation's admin, and a rebuilt peer of the other organisation
//! joining the channel with `weft peer channel joinbysnapshot`. It starts at
//! the snapshot's height, catches up from the orderer, serves the assets
//! written before the snapshot, endorses new transactions and ends with the
//! same state as the peer the snapshot came from.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::network::{CHANNEL, Network};

const BASIC: &str = "  - name: basic\n    launcher: { builtin: basic }\n";
const OR: &str = "OR('Org1MSP.peer', 'Org2MSP.peer')";

fn args(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

/// `weft peer snapshot <args>` as `user` of org `i` against its peer.
fn snapshot(network: &Network, i: usize, user: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["snapshot"];
    full.extend_from_slice(args);
    network.peer_command_as(i, user, &full)
}

/// Where peer `i` writes its snapshot of the channel at `block`.
fn completed(network: &Network, i: usize, block: u64) -> PathBuf {
    network
        .data_dir(i)
        .join("snapshots/completed")
        .join(CHANNEL)
        .join(block.to_string())
}

fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.is_file() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The file hashes a snapshot's signable metadata lists.
fn file_hashes(snapshot: &Path) -> serde_json::Value {
    let path = snapshot.join("_snapshot_signable_metadata.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}: {path:?}"));
    let metadata: serde_json::Value = serde_json::from_str(&text).expect("metadata JSON");
    metadata["snapshot_files_raw_hashes"].clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read snapshot") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn a_rebuilt_peer_joins_from_a_snapshot_and_catches_up() {
    let mut network = Network::start(1, BASIC, &[("basic", "basic", OR)]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = network.gateway(0, "User1");
    let create = |gateway: &weft_client::Gateway, id: &str| {
        runtime
            .block_on(gateway.submit(
                CHANNEL,
                "basic",
                &args(&["CreateAsset", id, "blue", "5", "Tomoko", "300"]),
            ))
            .unwrap_or_else(|e| panic!("CreateAsset {id}: {e}"))
    };
    for n in 0..5 {
        create(&org1, &format!("before-{n}"));
    }
    let height = network.height(0).expect("height");

    // Refusals, each naming what was wrong.
    let not_admin = snapshot(&network, 0, "User1", &["submitrequest", "-c", CHANNEL])
        .expect_err("User1 is not an admin");
    assert!(
        not_admin.contains("snapshot requests need an admin of Org1MSP"),
        "{not_admin}"
    );
    let past = snapshot(
        &network,
        0,
        "Admin",
        &["submitrequest", "-c", CHANNEL, "-b", "1"],
    )
    .expect_err("block 1 is in the past");
    assert!(past.contains("block 1 is already committed"), "{past}");
    let unknown = snapshot(&network, 0, "Admin", &["submitrequest", "-c", "nosuch"])
        .expect_err("no such channel");
    assert!(
        unknown.contains("channel \"nosuch\" not found"),
        "{unknown}"
    );

    // A request for a later block waits: listed, kept across a restart,
    // cancelled.
    let later = (height + 1000).to_string();
    let pending = |network: &Network| {
        snapshot(network, 0, "Admin", &["listpending", "-c", CHANNEL]).expect("listpending")
    };
    snapshot(
        &network,
        0,
        "Admin",
        &["submitrequest", "-c", CHANNEL, "-b", &later],
    )
    .expect("a later block");
    assert!(pending(&network).contains(&format!("[{later}]")));
    network.kill_peer(0);
    network.start_peer(0);
    network.wait_for_height(0, height);
    assert!(
        pending(&network).contains(&format!("[{later}]")),
        "pending requests survive a restart"
    );
    snapshot(
        &network,
        0,
        "Admin",
        &["cancelrequest", "-c", CHANNEL, "-b", &later],
    )
    .expect("cancel");
    assert!(pending(&network).contains("[]"), "{}", pending(&network));
    let again = snapshot(
        &network,
        0,
        "Admin",
        &["cancelrequest", "-c", CHANNEL, "-b", &later],
    )
    .expect_err("nothing to cancel");
    assert!(
        again.contains(&format!("no snapshot request for block {later} is pending")),
        "{again}"
    );

    // At the last committed block: taken at once.
    let out =
        snapshot(&network, 0, "Admin", &["submitrequest", "-c", CHANNEL]).expect("snapshot now");
    assert!(
        out.contains("Snapshot request submitted successfully"),
        "{out}"
    );
    let first = completed(&network, 0, height - 1);
    assert!(
        first.join("_snapshot_signable_metadata.json").is_file(),
        "{}",
        network.log(0)
    );

    // At the next block: taken when that block commits.
    let next = height.to_string();
    snapshot(
        &network,
        0,
        "Admin",
        &["submitrequest", "-c", CHANNEL, "-b", &next],
    )
    .expect("the next block");
    let created = create(&org1, "after-0");
    assert_eq!(created.block, height);
    wait_for_file(&completed(&network, 0, height).join("_snapshot_signable_metadata.json"));

    // Org2's peer is rebuilt: killed, its data removed, started empty.
    network.kill_peer(1);
    std::fs::remove_dir_all(network.data_dir(1)).expect("remove peer data");
    network.start_peer(1);
    assert_eq!(network.height(1), None, "the rebuilt peer has no channel");

    // A damaged snapshot is refused and leaves nothing behind.
    // An operator copies snapshots into the peer's snapshot area; a path
    // anywhere else is refused (tests/trust_boundaries.rs).
    let imports = network.data_dir(1).join("snapshots/import");
    let damaged = imports.join("damaged");
    copy_dir(&first, &damaged);
    let state = damaged.join("public_state.data");
    let mut bytes = std::fs::read(&state).expect("read state");
    let last_byte = bytes.len() - 1;
    bytes[last_byte] ^= 1;
    std::fs::write(&state, bytes).expect("write state");
    let refused = network
        .channel_admin(
            1,
            &[
                "joinbysnapshot",
                "--snapshotpath",
                &damaged.display().to_string(),
            ],
        )
        .expect_err("a damaged snapshot");
    assert!(refused.contains("public_state.data"), "{refused}");
    assert_eq!(network.height(1), None, "nothing was joined");

    // Joined from the snapshot at `height - 1`: it starts at `height`.
    let copied = imports.join(format!("{}", height - 1));
    copy_dir(&first, &copied);
    let snapshot_path = copied.display().to_string();
    let joined = network
        .channel_admin(1, &["joinbysnapshot", "--snapshotpath", &snapshot_path])
        .unwrap_or_else(|e| panic!("{e}\n{}", network.log(1)));
    assert!(
        joined.contains(&format!(
            "joined channel {CHANNEL} from the snapshot (height {height})"
        )),
        "{joined}"
    );
    let twice = network
        .channel_admin(1, &["joinbysnapshot", "--snapshotpath", &snapshot_path])
        .expect_err("already joined");
    assert!(
        twice.contains("already joined channel mychannel"),
        "{twice}"
    );

    // It pulls the blocks after the snapshot and serves the older assets.
    network.wait_for_height(1, network.height(0).expect("height"));
    let org2 = network.gateway(1, "User1");
    let read = runtime
        .block_on(org2.evaluate(CHANNEL, "basic", &args(&["ReadAsset", "before-0"])))
        .expect("an asset from before the snapshot");
    assert!(
        String::from_utf8_lossy(&read).contains("\"Owner\":\"Tomoko\""),
        "{}",
        String::from_utf8_lossy(&read)
    );
    // It endorses (the chaincode definition came with the snapshot) and commits.
    let through_org2 = create(&org2, "after-1");
    network.wait_for_height(0, through_org2.block + 1);
    network.wait_for_height(1, through_org2.block + 1);
    // A restart keeps the channel.
    network.kill_peer(1);
    network.start_peer(1);
    network.wait_for_height(1, through_org2.block + 1);

    // Both peers now hold the same state: snapshots at the same block
    // match file for file.
    for (i, org) in [(0, "Org1"), (1, "Org2")] {
        snapshot(&network, i, "Admin", &["submitrequest", "-c", CHANNEL])
            .unwrap_or_else(|e| panic!("{org}: {e}"));
    }
    let hashes: Vec<_> = (0..2)
        .map(|i| file_hashes(&completed(&network, i, through_org2.block)))
        .collect();
    assert_eq!(hashes[0], hashes[1], "same state, tx ids and config block");
    assert!(hashes[0]["public_state.data"].is_string(), "{}", hashes[0]);
}
