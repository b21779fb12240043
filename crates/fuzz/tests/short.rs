//! A short fuzzing run of every harness (the long runs are `weft-fuzz`):
//! no decoder reachable from the network may panic.

use weft_fuzz::{Budget, fuzz, harnesses};

#[test]
fn no_decoder_panics_on_mutated_network_input() {
    let all = harnesses::all();
    assert!(all.len() >= 10, "a harness per network decoder");
    let seed = std::env::var("WEFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut failures = Vec::new();
    for harness in &all {
        // The config block harness validates certificates: fewer, slower runs.
        let executions = if harness.name.starts_with("config block") {
            2_000
        } else {
            20_000
        };
        let report = fuzz(harness, Budget::Executions(executions), seed);
        assert_eq!(report.executions, executions);
        for (input, message) in &report.crashes {
            failures.push(format!(
                "{}: {message} on {} bytes: {input:02x?}",
                harness.name,
                input.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
