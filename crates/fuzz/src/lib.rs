//! Mutation fuzzing of every decoder a node runs on bytes from the network,
//! on the stable toolchain (no nightly, no sanitizers here): each
//! [`Harness`] starts from valid messages (built with the test kit) and
//! feeds the decoder mutated copies — bit flips, byte changes, cuts,
//! insertions, splices of other seeds' bytes, varint edits — catching any
//! panic as a crash with the input that caused it.
//!
//! `weft-fuzz` (the binary) runs them long; `tests/short.rs` runs each
//! briefly in CI. [`hostile`] sends such inputs over the network to a
//! running `weft up` network (`weft-fuzz --network DIR`). A crash means a panic reachable from network input: the
//! harness names the decoder and the input is saved to reproduce it.
//!
//! Not a dependency of any node: a tool beside `testkit`.

pub mod chaincode;
pub mod harnesses;
pub mod hostile;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// What a harness runs on each input.
pub type Decoder = Box<dyn Fn(&[u8]) + Send + Sync>;

/// One decoder under test: its seeds and what runs on each input.
pub struct Harness {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub run: Decoder,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("name", &self.name)
            .field("seeds", &self.seeds.len())
            .finish()
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    /// Inputs that panicked, with the panic message (at most a few kept).
    pub crashes: Vec<(Vec<u8>, String)>,
    pub crash_count: u64,
}

/// How long a run goes.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Executions(u64),
    Time(Duration),
}

/// The bench's seeded xorshift64*: a run is reproducible from its seed.
pub use weft_bench::workload::Rng;

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x1a, 0x22];

/// One mutation of `input`, using `seeds` for splices.
pub fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next_u64() as u8;
            }
            3 => input.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                input.drain(start..end);
            }
            5 => {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(8);
                for _ in 0..count {
                    input.insert(at, rng.next_u64() as u8);
                }
            }
            6 if !seeds.is_empty() => {
                // Splice a piece of another valid message in: nested
                // messages keep their shape and reach deeper decoders.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(other.len() - from)).min(other.len());
                    let at = rng.below(len + 1);
                    let cut = (at + rng.below(32)).min(len);
                    input.splice(at..cut, other[from..to].iter().copied());
                }
            }
            7 if len > 0 => {
                // A length or tag varint turned huge or zero.
                let i = rng.below(len);
                let replacement: &[u8] = if rng.below(2) == 0 {
                    &[0xff, 0xff, 0xff, 0xff, 0x0f]
                } else {
                    &[0x00]
                };
                input.splice(i..(i + 1).min(len), replacement.iter().copied());
            }
            _ if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                input.swap(a, b);
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
    // Inputs stay below what a gRPC message may be, and small enough to be fast.
    input.truncate(1 << 20);
}

/// Runs `harness` within `budget`; `seed` makes the run reproducible.
pub fn fuzz(harness: &Harness, budget: Budget, seed: u64) -> Report {
    let mut rng = Rng::seeded(seed ^ fnv(harness.name));
    let mut report = Report::default();
    let started = Instant::now();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // The seeds themselves first: valid inputs must pass too.
    let mut queue: Vec<Vec<u8>> = harness.seeds.clone();
    loop {
        match budget {
            Budget::Executions(n) if report.executions >= n => break,
            Budget::Time(limit) if report.executions % 256 == 0 && started.elapsed() >= limit => {
                break;
            }
            _ => {}
        }
        let input = match queue.pop() {
            Some(input) => input,
            None => {
                let mut input = if harness.seeds.is_empty() {
                    Vec::new()
                } else {
                    harness.seeds[rng.below(harness.seeds.len())].clone()
                };
                mutate(&mut input, &harness.seeds, &mut rng);
                input
            }
        };
        report.executions += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (harness.run)(&input))) {
            report.crash_count += 1;
            if report.crashes.len() < 8 {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                report.crashes.push((input, message));
            }
        }
    }
    std::panic::set_hook(previous);
    report
}

fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decoder_is_caught_with_its_input() {
        let harness = Harness {
            name: "panics on 0xff",
            seeds: vec![vec![1, 2, 3]],
            run: Box::new(|input| assert!(!input.contains(&0xff), "0xff seen")),
        };
        let report = fuzz(&harness, Budget::Executions(20_000), 7);
        assert_eq!(report.executions, 20_000);
        assert!(report.crash_count > 0, "the mutator reaches 0xff");
        let (input, message) = &report.crashes[0];
        assert!(input.contains(&0xff));
        assert!(message.contains("0xff seen"), "{message}");
    }

    #[test]
    fn runs_are_reproducible() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let (mut x, mut y) = (b"seed".to_vec(), b"seed".to_vec());
        let (mut r1, mut r2) = (Rng::seeded(5), Rng::seeded(5));
        for _ in 0..100 {
            mutate(&mut x, &[], &mut r1);
            mutate(&mut y, &[], &mut r2);
            a.push(x.clone());
            b.push(y.clone());
        }
        assert_eq!(a, b);
    }
}
