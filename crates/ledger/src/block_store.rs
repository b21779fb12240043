//! The block store: append-only segment files of framed, checksummed block
//! bytes, fsync'd per block, with an in-memory index by block number.
//!
//! A frame is `length: u32 LE | crc32: u32 LE | number: u64 LE | block bytes`,
//! the checksum covering the number and the bytes. Opening the store reads
//! every frame; the first torn or corrupt frame and everything after it is
//! cut off, so a block that was not completely written is never served.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use weft_protos::Message;
use weft_protos::common::{Block, BlockHeader};
use weft_protoutil::{block_data_hash, block_header_hash, hex};

use crate::error::LedgerError;

const FRAME_HEADER_BYTES: usize = 16;
const SEGMENT_PREFIX: &str = "blockfile_";
const BOOTSTRAP_FILE: &str = "bootstrap";

/// Settings of a block store.
#[derive(Debug, Clone)]
pub struct BlockStoreConfig {
    /// A new segment file starts once the current one would exceed this.
    pub segment_bytes_max: u64,
    /// The largest block accepted.
    pub block_bytes_max: u32,
}

impl Default for BlockStoreConfig {
    fn default() -> Self {
        BlockStoreConfig {
            segment_bytes_max: 64 * 1024 * 1024,
            block_bytes_max: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u32,
    offset: u64,
    length: u32,
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// Bytes cut off, in that segment and any later ones.
    pub bytes_dropped: u64,
}

pub struct BlockStore {
    dir: PathBuf,
    config: BlockStoreConfig,
    first_number: u64,
    locations: Vec<Location>,
    last_hash: Vec<u8>,
    segment: u32,
    segment_bytes: u64,
    writer: Option<File>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("dir", &self.dir)
            .field("first_number", &self.first_number)
            .field("height", &self.height())
            .finish()
    }
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{segment:06}"))
}

fn checksum(number: u64, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&number.to_le_bytes());
    hasher.update(bytes);
    hasher.finalize()
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(LedgerError::io(dir))
}

impl BlockStore {
    /// Opens (or creates) the store in `dir`, cutting off a torn or corrupt tail.
    pub fn open(
        dir: &Path,
        config: BlockStoreConfig,
    ) -> Result<(BlockStore, Option<Truncation>), LedgerError> {
        std::fs::create_dir_all(dir).map_err(LedgerError::io(dir))?;
        let (first_number, bootstrap_hash) = read_bootstrap(dir)?;
        let mut segments = list_segments(dir)?;
        segments.sort_unstable();

        let mut store = BlockStore {
            dir: dir.to_path_buf(),
            config,
            first_number,
            locations: Vec::new(),
            last_hash: bootstrap_hash,
            segment: 0,
            segment_bytes: 0,
            writer: None,
        };
        let mut truncation = None;
        for (position, segment) in segments.iter().copied().enumerate() {
            let path = segment_path(dir, segment);
            if truncation.is_some() {
                let length = std::fs::metadata(&path)
                    .map_err(LedgerError::io(&path))?
                    .len();
                if let Some(Truncation { bytes_dropped, .. }) = truncation.as_mut() {
                    *bytes_dropped += length;
                }
                std::fs::remove_file(&path).map_err(LedgerError::io(&path))?;
                continue;
            }
            if segment != position as u32 {
                return Err(LedgerError::Corrupt {
                    path,
                    offset: 0,
                    reason: format!("segment {position} is missing"),
                });
            }
            let bytes = std::fs::read(&path).map_err(LedgerError::io(&path))?;
            let (good, bad) = store.scan_segment(segment, &bytes);
            store.segment = segment;
            store.segment_bytes = good;
            if let Some(reason) = bad {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(LedgerError::io(&path))?;
                file.set_len(good).map_err(LedgerError::io(&path))?;
                file.sync_all().map_err(LedgerError::io(&path))?;
                truncation = Some(Truncation {
                    path,
                    offset: good,
                    reason,
                    bytes_dropped: bytes.len() as u64 - good,
                });
            }
        }
        if truncation.is_some() {
            sync_dir(dir)?;
        }
        if let Some(last) = store.height().checked_sub(1)
            && last >= store.first_number
        {
            let block = store.block(last)?;
            let header = block
                .header
                .as_ref()
                .ok_or_else(|| LedgerError::MalformedBlock {
                    number: last,
                    reason: "no header".into(),
                })?;
            store.last_hash = block_header_hash(header).to_vec();
        }
        Ok((store, truncation))
    }

    /// Reads frames until the first bad one; returns the good length and why the rest is bad.
    fn scan_segment(&mut self, segment: u32, bytes: &[u8]) -> (u64, Option<String>) {
        let mut offset = 0usize;
        while offset < bytes.len() {
            let Some(header) = bytes.get(offset..offset + FRAME_HEADER_BYTES) else {
                return (offset as u64, Some("torn frame header".into()));
            };
            let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let number = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            let start = offset + FRAME_HEADER_BYTES;
            let Some(body) = bytes.get(start..start + length as usize) else {
                return (offset as u64, Some(format!("torn block {number}")));
            };
            if length == 0 || checksum(number, body) != crc {
                return (
                    offset as u64,
                    Some(format!("checksum mismatch in block {number}")),
                );
            }
            if number != self.height() {
                return (
                    offset as u64,
                    Some(format!(
                        "block {number} where block {} belongs",
                        self.height()
                    )),
                );
            }
            self.locations.push(Location {
                segment,
                offset: start as u64,
                length,
            });
            offset = start + length as usize;
        }
        (offset as u64, None)
    }

    /// Starts an empty store whose first block will be `first_number`,
    /// chained to `previous_hash` (joining a channel from a snapshot).
    pub fn bootstrap(
        dir: &Path,
        first_number: u64,
        previous_hash: &[u8],
        config: BlockStoreConfig,
    ) -> Result<BlockStore, LedgerError> {
        std::fs::create_dir_all(dir).map_err(LedgerError::io(dir))?;
        if !list_segments(dir)?.is_empty() || dir.join(BOOTSTRAP_FILE).exists() {
            return Err(LedgerError::Snapshot {
                path: dir.to_path_buf(),
                reason: "the block store already holds blocks".into(),
            });
        }
        let text = format!(
            "first_block {first_number}\nprevious_hash {}\n",
            hex(previous_hash)
        );
        let path = dir.join(BOOTSTRAP_FILE);
        let tmp = dir.join("bootstrap.tmp");
        let mut file = File::create(&tmp).map_err(LedgerError::io(&tmp))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(LedgerError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LedgerError::io(&path))?;
        sync_dir(dir)?;
        Ok(BlockStore::open(dir, config)?.0)
    }

    /// The number of the next block to append.
    pub fn height(&self) -> u64 {
        self.first_number + self.locations.len() as u64
    }

    /// The first block this store holds (0 unless bootstrapped from a snapshot).
    pub fn first_number(&self) -> u64 {
        self.first_number
    }

    /// Header hash of the newest block: what the next block's previous hash must be.
    pub fn last_hash(&self) -> &[u8] {
        &self.last_hash
    }

    /// Checks that `block` extends the chain; returns its header hash.
    pub fn check_extends(&self, block: &Block) -> Result<[u8; 32], LedgerError> {
        let header = self.check_place(block)?;
        let number = header.number;
        let chain = |reason: String| LedgerError::Chain { number, reason };
        let data_hash = block_data_hash(block.data.as_ref().unwrap_or(&Default::default()));
        if header.data_hash != data_hash {
            return Err(chain(format!(
                "data hash {} does not match the data ({})",
                hex(&header.data_hash),
                hex(&data_hash)
            )));
        }
        Ok(block_header_hash(header))
    }

    /// Checks that `block` comes next and names the newest block as its
    /// previous one; returns its header. Its data hash is not checked.
    fn check_place<'a>(&self, block: &'a Block) -> Result<&'a BlockHeader, LedgerError> {
        let header = block
            .header
            .as_ref()
            .ok_or_else(|| LedgerError::MalformedBlock {
                number: self.height(),
                reason: "the block has no header".into(),
            })?;
        let number = header.number;
        let chain = |reason: String| LedgerError::Chain { number, reason };
        if number != self.height() {
            return Err(chain(format!("the next block is {}", self.height())));
        }
        if header.previous_hash != self.last_hash {
            return Err(chain(format!(
                "previous hash {} is not the hash of block {} ({})",
                hex(&header.previous_hash),
                number.wrapping_sub(1),
                hex(&self.last_hash)
            )));
        }
        Ok(header)
    }

    /// Appends `block` and fsyncs it. The block must extend the chain.
    pub fn append(&mut self, block: &Block) -> Result<(), LedgerError> {
        let hash = self.check_extends(block)?;
        self.write(block, hash)
    }

    /// [`BlockStore::append`] for a block whose data hash the caller already
    /// checked with [`BlockStore::check_extends`], which returned `hash`: the
    /// commit path, which checks a block before validating it, does not hash
    /// its data a second time. Its place in the chain is checked again.
    pub(crate) fn append_checked(
        &mut self,
        block: &Block,
        hash: [u8; 32],
    ) -> Result<(), LedgerError> {
        let header = self.check_place(block)?;
        debug_assert_eq!(
            block_header_hash(header),
            hash,
            "the hash check_extends returned"
        );
        self.write(block, hash)
    }

    fn write(&mut self, block: &Block, hash: [u8; 32]) -> Result<(), LedgerError> {
        let number = self.height();
        let bytes = block.encode_to_vec();
        let length = u32::try_from(bytes.len())
            .ok()
            .filter(|length| *length <= self.config.block_bytes_max)
            .ok_or_else(|| LedgerError::MalformedBlock {
                number,
                reason: format!(
                    "{} bytes exceeds the block size limit of {} bytes",
                    bytes.len(),
                    self.config.block_bytes_max
                ),
            })?;
        let frame_bytes = (FRAME_HEADER_BYTES + bytes.len()) as u64;
        if self.segment_bytes > 0
            && self.segment_bytes + frame_bytes > self.config.segment_bytes_max
        {
            self.segment += 1;
            self.segment_bytes = 0;
            self.writer = None;
        }
        let path = segment_path(&self.dir, self.segment);
        if self.writer.is_none() {
            let created = !path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(LedgerError::io(&path))?;
            if created {
                sync_dir(&self.dir)?;
            }
            self.writer = Some(file);
        }
        let writer = self.writer.as_mut().expect("opened above");
        let mut frame = Vec::with_capacity(frame_bytes as usize);
        frame.extend_from_slice(&length.to_le_bytes());
        frame.extend_from_slice(&checksum(number, &bytes).to_le_bytes());
        frame.extend_from_slice(&number.to_le_bytes());
        frame.extend_from_slice(&bytes);
        let written = writer
            .write_all(&frame)
            .and_then(|()| writer.sync_data())
            .map_err(LedgerError::io(&path));
        if let Err(error) = written {
            // Leave the file as it was: cut off whatever part of the frame landed.
            self.writer = None;
            if let Ok(file) = OpenOptions::new().write(true).open(&path) {
                let _ = file.set_len(self.segment_bytes);
            }
            return Err(error);
        }
        self.locations.push(Location {
            segment: self.segment,
            offset: self.segment_bytes + FRAME_HEADER_BYTES as u64,
            length,
        });
        self.segment_bytes += frame_bytes;
        self.last_hash = hash.to_vec();
        Ok(())
    }

    /// The stored bytes of block `number`.
    pub fn block_bytes(&self, number: u64) -> Result<Vec<u8>, LedgerError> {
        let location = number
            .checked_sub(self.first_number)
            .and_then(|index| self.locations.get(index as usize))
            .ok_or(LedgerError::NoSuchBlock(number))?;
        let path = segment_path(&self.dir, location.segment);
        let file = File::open(&path).map_err(LedgerError::io(&path))?;
        let mut bytes = vec![0u8; location.length as usize];
        file.read_exact_at(&mut bytes, location.offset)
            .map_err(LedgerError::io(&path))?;
        Ok(bytes)
    }

    pub fn block(&self, number: u64) -> Result<Block, LedgerError> {
        let bytes = self.block_bytes(number)?;
        Block::decode(bytes.as_slice()).map_err(|error| LedgerError::MalformedBlock {
            number,
            reason: error.to_string(),
        })
    }
}

fn list_segments(dir: &Path) -> Result<Vec<u32>, LedgerError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LedgerError::io(dir))? {
        let entry = entry.map_err(LedgerError::io(dir))?;
        let name = entry.file_name();
        if let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_prefix(SEGMENT_PREFIX))
            .and_then(|number| number.parse::<u32>().ok())
        {
            segments.push(number);
        }
    }
    Ok(segments)
}

fn read_bootstrap(dir: &Path) -> Result<(u64, Vec<u8>), LedgerError> {
    let path = dir.join(BOOTSTRAP_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(error) => return Err(LedgerError::io(&path)(error)),
    };
    let corrupt = |reason: &str| LedgerError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.into(),
    };
    let mut first = None;
    let mut previous = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("first_block", value)) => first = value.parse::<u64>().ok(),
            Some(("previous_hash", value)) => previous = weft_protoutil::unhex(value),
            _ => return Err(corrupt("unexpected line")),
        }
    }
    match (first, previous) {
        (Some(first), Some(previous)) => Ok((first, previous)),
        _ => Err(corrupt("expected first_block and previous_hash")),
    }
}
