//! The block store: chain checks on append, and torn or corrupt tails cut
//! off on open so they are never served.

use std::fs::OpenOptions;
use std::path::Path;

use weft_ledger::{BlockStore, BlockStoreConfig, LedgerError};
use weft_protoutil::block_header_hash;
use weft_testkit::Chain;

fn small_segments() -> BlockStoreConfig {
    BlockStoreConfig {
        segment_bytes_max: 600,
        ..BlockStoreConfig::default()
    }
}

fn fill(dir: &Path, blocks: u64) -> Chain {
    let (mut store, truncated) = BlockStore::open(dir, small_segments()).expect("open");
    assert_eq!(truncated, None);
    let mut chain = Chain::default();
    for number in 0..blocks {
        let block = chain.block(vec![format!("tx-{number}").repeat(20).into_bytes()]);
        store.append(&block).expect("append");
    }
    chain
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("blockfile_"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn blocks_are_read_back_by_number_across_segments() {
    let dir = tempfile::tempdir().expect("dir");
    let chain = fill(dir.path(), 12);
    assert!(segments(dir.path()).len() > 2, "small segments roll over");
    let (store, truncated) = BlockStore::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(truncated, None);
    assert_eq!(store.height(), 12);
    for number in 0..12 {
        let block = store.block(number).expect("block");
        assert_eq!(block.header.as_ref().expect("header").number, number);
        assert_eq!(
            block.data.expect("data").data[0],
            format!("tx-{number}").repeat(20).into_bytes()
        );
    }
    assert_eq!(store.last_hash(), chain.previous_hash.as_slice());
    assert!(matches!(store.block(12), Err(LedgerError::NoSuchBlock(12))));
}

#[test]
fn appends_that_break_the_chain_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let chain = fill(dir.path(), 3);
    let (mut store, _) = BlockStore::open(dir.path(), small_segments()).expect("open");

    let mut wrong_number = chain.clone();
    wrong_number.next_number = 5;
    let error = store
        .append(&wrong_number.block(vec![b"x".to_vec()]))
        .expect_err("number");
    assert!(error.to_string().contains("the next block is 3"), "{error}");

    let mut wrong_previous = chain.clone();
    wrong_previous.previous_hash[0] ^= 1;
    let error = store
        .append(&wrong_previous.block(vec![b"x".to_vec()]))
        .expect_err("previous");
    assert!(error.to_string().contains("previous hash"), "{error}");

    let mut bad_data = chain.clone().block(vec![b"x".to_vec()]);
    bad_data.data.as_mut().expect("data").data[0] = b"y".to_vec();
    let error = store.append(&bad_data).expect_err("data hash");
    assert!(error.to_string().contains("data hash"), "{error}");

    assert_eq!(store.height(), 3);
    store
        .append(&chain.clone().block(vec![b"x".to_vec()]))
        .expect("the right block");
}

#[test]
fn a_torn_tail_is_cut_off_and_the_store_continues() {
    let dir = tempfile::tempdir().expect("dir");
    let mut chain = fill(dir.path(), 6);
    let last = segments(dir.path()).pop().expect("segment");
    let length = std::fs::metadata(&last).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open")
        .set_len(length - 7)
        .expect("truncate");

    let (mut store, truncated) = BlockStore::open(dir.path(), small_segments()).expect("reopen");
    let truncated = truncated.expect("the torn block is reported");
    assert!(
        truncated.reason.contains("torn block 5"),
        "{}",
        truncated.reason
    );
    assert_eq!(store.height(), 5);
    let block4 = store.block(4).expect("block 4");
    assert_eq!(
        store.last_hash(),
        block_header_hash(block4.header.as_ref().expect("h"))
    );

    // Block 5 can be written again, and everything reads back after another reopen.
    chain.next_number = 5;
    chain.previous_hash = store.last_hash().to_vec();
    store
        .append(&chain.block(vec![b"again".to_vec()]))
        .expect("append");
    drop(store);
    let (store, truncated) = BlockStore::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(truncated, None);
    assert_eq!(
        store.block(5).expect("5").data.expect("data").data[0],
        b"again"
    );
}

#[test]
fn a_flipped_byte_cuts_the_store_back_to_the_last_good_block() {
    let dir = tempfile::tempdir().expect("dir");
    fill(dir.path(), 12);
    let files = segments(dir.path());
    // Corrupt a byte in the middle of the second segment.
    let target = &files[1];
    let mut bytes = std::fs::read(target).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(target, &bytes).expect("write");

    let (store, truncated) = BlockStore::open(dir.path(), small_segments()).expect("reopen");
    let truncated = truncated.expect("corruption is reported");
    assert!(
        truncated.reason.contains("checksum") || truncated.reason.contains("torn"),
        "{}",
        truncated.reason
    );
    assert!(store.height() < 12);
    for number in 0..store.height() {
        store.block(number).expect("every kept block reads");
    }
    assert_eq!(segments(dir.path()).len(), 2, "later segments are removed");
}

#[test]
fn a_bootstrapped_store_continues_a_chain_from_a_snapshot_height() {
    let dir = tempfile::tempdir().expect("dir");
    let mut chain = Chain::after(41, vec![7; 32]);
    let mut store = BlockStore::bootstrap(dir.path(), 42, &[7; 32], BlockStoreConfig::default())
        .expect("bootstrap");
    assert_eq!(store.height(), 42);
    store
        .append(&chain.block(vec![b"x".to_vec()]))
        .expect("append 42");
    drop(store);
    let (store, _) = BlockStore::open(dir.path(), BlockStoreConfig::default()).expect("reopen");
    assert_eq!(store.height(), 43);
    assert!(store.block(41).is_err());
    assert_eq!(
        store.block(42).expect("42").header.expect("header").number,
        42
    );
}
