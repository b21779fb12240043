//! `weft-fuzz [--seconds N | --executions N] [--harness NAME] [--seed N] [--crashes DIR]`:
//! runs every harness (or those whose name contains NAME) for the budget
//! each, prints executions and crashes, saves crashing inputs, and exits 1
//! if any harness crashed.
//!
//! `weft-fuzz --network DIR [--seconds N] [--workers N]`: hostile clients
//! against the running `weft up` network in DIR (see `weft_fuzz::hostile`);
//! exits 1 if a node restarted, the normal client failed, or the canary
//! beside the network changed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft_fuzz::{Budget, fuzz, harnesses};

fn main() -> ExitCode {
    let mut budget = Budget::Time(Duration::from_secs(10));
    let mut filter = String::new();
    let mut seed = 1u64;
    let mut crashes_dir = std::path::PathBuf::from("fuzz-crashes");
    let mut network: Option<std::path::PathBuf> = None;
    let mut workers = 8u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let number = || value.as_deref().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--seconds" => match number() {
                Some(n) => budget = Budget::Time(Duration::from_secs(n)),
                None => return usage("--seconds takes a whole number"),
            },
            "--executions" => match number() {
                Some(n) => budget = Budget::Executions(n),
                None => return usage("--executions takes a whole number"),
            },
            "--seed" => match number() {
                Some(n) => seed = n,
                None => return usage("--seed takes a whole number"),
            },
            "--harness" => filter = value.unwrap_or_default(),
            "--crashes" => crashes_dir = value.unwrap_or_default().into(),
            "--network" => network = value.map(Into::into),
            "--workers" => match number() {
                Some(n) if n > 0 => workers = n,
                _ => return usage("--workers takes a whole number above 0"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if let Some(dir) = network {
        let Budget::Time(duration) = budget else {
            return usage("--network runs for --seconds, not --executions");
        };
        return hostile(&dir, duration, workers as usize, seed);
    }
    let mut total = 0u64;
    let mut crashed = false;
    for harness in harnesses::all() {
        if !harness.name.contains(&filter) {
            continue;
        }
        let started = Instant::now();
        let report = fuzz(&harness, budget, seed);
        total += report.executions;
        let rate = report.executions as f64 / started.elapsed().as_secs_f64().max(1e-9);
        println!(
            "{:<52} {:>12} executions {:>10.0}/s {:>4} crashes",
            harness.name, report.executions, rate, report.crash_count
        );
        for (i, (input, message)) in report.crashes.iter().enumerate() {
            crashed = true;
            let name: String = harness
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let path = crashes_dir.join(format!("{name}-{i}.bin"));
            let saved =
                std::fs::create_dir_all(&crashes_dir).and_then(|()| std::fs::write(&path, input));
            println!(
                "  crash: {message} (input {} bytes{})",
                input.len(),
                match saved {
                    Ok(()) => format!(", saved to {}", path.display()),
                    Err(e) => format!(", not saved: {e}"),
                }
            );
        }
    }
    println!("total: {total} executions");
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn hostile(dir: &std::path::Path, duration: Duration, workers: usize, seed: u64) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return usage(&format!("starting the runtime: {e}")),
    };
    println!(
        "hostile clients: {workers} for {} s against {}",
        duration.as_secs(),
        dir.display()
    );
    let outcome = match runtime.block_on(weft_fuzz::hostile::attack(dir, duration, workers, seed)) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("weft-fuzz: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} hostile requests ({} refused or cut); normal client: {} committed, {} failed; restarted nodes: {:?}; canary intact: {}",
        outcome.requests,
        outcome.refused,
        outcome.committed,
        outcome.client_failures.len(),
        outcome.restarted,
        outcome.canary_intact
    );
    println!(
        "stalled handshakes: {} closed by the node, {} still open after {} s",
        outcome.stalled_closed,
        outcome.stalled_kept,
        weft_fuzz::hostile::STALL_BOUND.as_secs()
    );
    for failure in outcome.client_failures.iter().take(5) {
        println!("  client failure: {failure}");
    }
    if outcome.restarted.is_empty()
        && outcome.client_failures.is_empty()
        && outcome.canary_intact
        && outcome.stalled_kept == 0
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "weft-fuzz: {problem}\nusage: weft-fuzz [--seconds N | --executions N] [--harness NAME] [--seed N] [--crashes DIR]\n       weft-fuzz --network DIR [--seconds N] [--workers N] [--seed N]"
    );
    ExitCode::from(2)
}
