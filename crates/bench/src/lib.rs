//! `weft bench`: a load generator for any Fabric Gateway peer, weft's or
//! Fabric's, through weft's native gateway client.
//!
//! A run sends [`workload`] requests to one gateway peer for a duration or a
//! count, after a warm-up whose requests are not counted: closed loop (a
//! fixed number of requests in flight) or open loop (a target rate, latency
//! measured from each request's scheduled time so a slow server cannot hide
//! its queueing). Submits are timed per phase: endorse, submit (ordering
//! accepted), commit (until the commit status arrives). [`report`] turns
//! the samples into text, JSON and HTML.

pub mod report;
pub mod stats;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use weft_client::{ClientError, Gateway};
use weft_protos::peer::TxValidationCode;

pub use report::Report;
pub use workload::{Kind, Template, Workload};

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Submit,
    Evaluate,
    /// Each request is an evaluation with probability `read_ratio`, else a submit.
    Mixed {
        read_ratio: f64,
    },
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Submit => "submit",
            Mode::Evaluate => "evaluate",
            Mode::Mixed { .. } => "mixed",
        }
    }

    fn submits(self) -> bool {
        !matches!(self, Mode::Evaluate)
    }

    fn evaluates(self) -> bool {
        !matches!(self, Mode::Submit)
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `concurrency` requests always in flight.
    Closed { concurrency: usize },
    /// Requests start at `rate` per second whatever the answers; when
    /// `max_in_flight` are outstanding, a due request is dropped (and counted).
    Open { rate: f64, max_in_flight: usize },
}

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Count(u64),
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub mode: Mode,
    pub load: Load,
    pub stop: Stop,
    pub warmup: Duration,
    pub channel: String,
    pub chaincode: String,
    pub workload: Workload,
}

/// Where the load goes: one or more connections to one gateway peer.
#[derive(Debug, Clone)]
pub struct Target {
    pub gateways: Vec<Gateway>,
    /// For the report: the peer's address and the client's MSP.
    pub endpoint: String,
    pub msp_id: String,
    /// Server processes on this machine whose CPU the report shows (name,
    /// pid): a local network's peers and orderers. Empty for a remote target.
    pub servers: Vec<(String, u32)>,
}

/// CPU used while measuring, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    /// This process: the load generator.
    pub client: f64,
    /// Each of the target's server processes still running at the end.
    pub servers: Vec<(String, f64)>,
}

impl CpuUse {
    pub fn server_total(&self) -> f64 {
        self.servers.iter().map(|(_, seconds)| seconds).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Config(String),
    #[error("creating the workload's keys: {0}")]
    Seed(ClientError),
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Committed invalid because another transaction changed what it read.
    Conflict,
    /// Anything else: the phase and the message.
    Failed(String),
}

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// From the start of the measurement (the scheduled time in open loop).
    pub start: Duration,
    /// Started during the warm-up: not counted.
    pub warmup: bool,
    pub evaluate: bool,
    pub total: Duration,
    /// Submits only: endorse, submit, commit-wait; None for phases not reached.
    pub endorse: Option<Duration>,
    pub submit: Option<Duration>,
    pub commit: Option<Duration>,
    pub outcome: Outcome,
}

/// Seconds of CPU a process has used (user + system): this process when
/// `pid` is None. None if the process is gone.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 11 and 12 here;
    // Linux reports them in USER_HZ = 100 ticks per second.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A server's resident memory (RSS) over the measurement, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMemory {
    pub name: String,
    /// When the measurement started.
    pub start: u64,
    /// The most it reached: during the measurement, or since the process
    /// started where its peak could not be reset (see `peak_is_lifetime`).
    pub peak: u64,
    pub peak_is_lifetime: bool,
}

/// A process's resident set now and its peak so far (`VmRSS` and `VmHWM`
/// of `/proc/<pid>/status`), in bytes. None if the process is gone.
pub fn resident(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let kib = line.strip_prefix(name)?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok().map(|kib| kib * 1024)
        })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Lowers a process's recorded peak RSS to what it uses now (`5` into
/// `/proc/<pid>/clear_refs`, which changes nothing else), so that a later
/// peak is the measurement's. False where that is not permitted.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// At the start of the measurement: each server's RSS, after resetting
/// its peak.
fn memory_at_start(target: &Target) -> Vec<Option<(u64, bool)>> {
    target
        .servers
        .iter()
        .map(|(_, pid)| {
            let reset = reset_peak(*pid);
            resident(*pid).map(|(now, _)| (now, !reset))
        })
        .collect()
}

/// Each server's RSS at the start and its peak since; a server gone by the
/// end, or not there at the start, is left out.
fn memory_used(target: &Target, start: &[Option<(u64, bool)>]) -> Vec<ServerMemory> {
    target
        .servers
        .iter()
        .zip(start)
        .filter_map(|((name, pid), start)| {
            let (start, peak_is_lifetime) = (*start)?;
            let (_, peak) = resident(*pid)?;
            Some(ServerMemory {
                name: name.clone(),
                start,
                peak,
                peak_is_lifetime,
            })
        })
        .collect()
}

/// The CPU counters of this process and of the target's servers.
fn cpu_counters(target: &Target) -> (f64, Vec<Option<f64>>) {
    let servers = target
        .servers
        .iter()
        .map(|(_, pid)| cpu_seconds(Some(*pid)))
        .collect();
    (cpu_seconds(None).unwrap_or(0.0), servers)
}

/// What was used between two readings of [`cpu_counters`]; a server that
/// restarted in between (its counter went away) is left out.
fn cpu_used(target: &Target, before: &(f64, Vec<Option<f64>>)) -> CpuUse {
    let after = cpu_counters(target);
    CpuUse {
        client: after.0 - before.0,
        servers: target
            .servers
            .iter()
            .zip(before.1.iter().zip(&after.1))
            .filter_map(|((name, _), pair)| match pair {
                (Some(b), Some(a)) if a >= b => Some((name.clone(), a - b)),
                _ => None,
            })
            .collect(),
    }
}

struct Shared {
    config: BenchConfig,
    target: Target,
    /// Measurement starts here; requests before it are warm-up.
    measure_from: Instant,
    /// Requests numbered so far (count mode stops at the count).
    issued: AtomicU64,
    measured: AtomicU64,
    in_flight: AtomicUsize,
    /// Open loop: requests due while `max_in_flight` were outstanding.
    dropped: AtomicU64,
}

impl Shared {
    /// Whether another request may start now: false once the run is over.
    fn may_start(&self, now: Instant) -> bool {
        match self.config.stop {
            Stop::After(duration) => now < self.measure_from + duration,
            Stop::Count(count) => {
                if now < self.measure_from {
                    return true;
                }
                self.measured.fetch_add(1, Ordering::SeqCst) < count
            }
        }
    }

    async fn request(
        &self,
        scheduled: Instant,
        seq: u64,
        worker: usize,
        rng: &mut workload::Rng,
    ) -> Sample {
        let config = &self.config;
        let evaluate = match config.mode {
            Mode::Submit => false,
            Mode::Evaluate => true,
            Mode::Mixed { read_ratio } => rng.unit() < read_ratio,
        };
        let gateway = &self.target.gateways[seq as usize % self.target.gateways.len()];
        let template = if evaluate {
            config.workload.evaluate_template()
        } else {
            config.workload.submit_template()
        };
        let args = config.workload.args(&template, seq, worker, rng);
        let (channel, chaincode) = (config.channel.as_str(), config.chaincode.as_str());
        let (mut endorse, mut submit, mut commit) = (None, None, None);
        let outcome = if evaluate {
            match gateway.evaluate(channel, chaincode, &args).await {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        } else {
            let phase = Instant::now();
            let result = async {
                let endorsed = gateway.endorse(channel, chaincode, &args).await?;
                endorse = Some(phase.elapsed());
                let tx_id = endorsed.tx_id.clone();
                let sent = Instant::now();
                gateway.send(endorsed).await?;
                submit = Some(sent.elapsed());
                let waited = Instant::now();
                let block = gateway.commit_status(channel, &tx_id).await;
                commit = Some(waited.elapsed());
                block
            }
            .await;
            match result {
                Ok(_) => Outcome::Ok,
                Err(ClientError::Invalid {
                    code: TxValidationCode::MvccReadConflict | TxValidationCode::PhantomReadConflict,
                    ..
                }) => Outcome::Conflict,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        };
        Sample {
            start: scheduled.saturating_duration_since(self.measure_from),
            warmup: scheduled < self.measure_from,
            evaluate,
            total: scheduled.elapsed(),
            endorse,
            submit,
            commit,
            outcome,
        }
    }
}

/// Creates the workload's keys (when its templates use `{key}`), 32 at a time.
async fn seed(
    target: &Target,
    config: &BenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BenchError> {
    let workload = &config.workload;
    if !workload.needs_seed(config.mode.submits(), config.mode.evaluates()) {
        return Ok(());
    }
    progress(&format!("creating {} keys for the workload", workload.keys));
    let gateway = &target.gateways[0];
    let mut tasks: JoinSet<Result<(u64, usize), ClientError>> = JoinSet::new();
    // The key committed in the newest block: (block, key index).
    let mut newest = None;
    let mut joined = |done: Result<Result<(u64, usize), ClientError>, tokio::task::JoinError>| {
        let committed = done
            .map_err(|e| BenchError::Config(e.to_string()))?
            .map_err(BenchError::Seed)?;
        newest = newest.max(Some(committed));
        Ok::<(), BenchError>(())
    };
    for index in 0..workload.keys {
        if tasks.len() >= 32
            && let Some(done) = tasks.join_next().await
        {
            joined(done)?;
        }
        let (gateway, args) = (gateway.clone(), workload.seed_args(index));
        let (channel, chaincode) = (config.channel.clone(), config.chaincode.clone());
        tasks.spawn(async move {
            let submitted = gateway.submit(&channel, &chaincode, &args).await?;
            Ok((submitted.block, index))
        });
    }
    while let Some(done) = tasks.join_next().await {
        joined(done)?;
    }
    match newest {
        Some((_, index)) => readable_everywhere(gateway, config, &workload.read_args(index)).await,
        None => Ok(()),
    }
}

/// Waits until a seeded key reads (`args`) through every organisation the
/// chaincode's policy asks to endorse. A submit returns once the gateway's own peer has
/// committed; another organisation's peer may be a block behind, and a
/// request it endorsed at that moment would find no asset. Peers commit
/// blocks in order, so the key of the newest block stands for them all.
async fn readable_everywhere(
    gateway: &Gateway,
    config: &BenchConfig,
    args: &[Vec<u8>],
) -> Result<(), BenchError> {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        // Endorsed only, never sent: nothing is written.
        match gateway
            .endorse(&config.channel, &config.chaincode, args)
            .await
        {
            Ok(_) => return Ok(()),
            Err(_) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(BenchError::Seed(error)),
        }
    }
}

/// Runs the benchmark; `progress` gets a line per phase and one per second
/// while measuring.
pub async fn run(
    target: Target,
    config: BenchConfig,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Report, BenchError> {
    if target.gateways.is_empty() {
        return Err(BenchError::Config("no gateway connections".into()));
    }
    match config.load {
        Load::Closed { concurrency: 0 } => {
            return Err(BenchError::Config("concurrency must be at least 1".into()));
        }
        Load::Open { rate, .. } if rate.is_nan() || rate <= 0.0 => {
            return Err(BenchError::Config("the rate must be above 0".into()));
        }
        _ => {}
    }
    seed(&target, &config, progress).await?;
    progress(&format!(
        "{} load on {} ({}), {} connection(s), warm-up {:.1} s",
        config.mode.name(),
        target.endpoint,
        target.msp_id,
        target.gateways.len(),
        config.warmup.as_secs_f64()
    ));
    let started = Instant::now();
    let shared = Arc::new(Shared {
        measure_from: started + config.warmup,
        config: config.clone(),
        target: target.clone(),
        issued: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
    });
    let (samples_tx, mut samples_rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let mut tasks = JoinSet::new();
    match config.load {
        Load::Closed { concurrency } => {
            for worker in 0..concurrency {
                let (shared, samples) = (Arc::clone(&shared), samples_tx.clone());
                tasks.spawn(async move {
                    let mut rng = workload::Rng::new();
                    loop {
                        let now = Instant::now();
                        if !shared.may_start(now) {
                            break;
                        }
                        let seq = shared.issued.fetch_add(1, Ordering::Relaxed);
                        shared.in_flight.fetch_add(1, Ordering::SeqCst);
                        let sample = shared.request(now, seq, worker, &mut rng).await;
                        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                        if samples.send(sample).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        Load::Open {
            rate,
            max_in_flight,
        } => {
            // The dispatcher runs beside the collector below, so progress
            // lines come out while it works.
            let (shared, samples) = (Arc::clone(&shared), samples_tx.clone());
            tasks.spawn(async move {
                let interval = Duration::from_secs_f64(1.0 / rate);
                let mut next = Instant::now();
                let mut rng = workload::Rng::new();
                let mut requests = JoinSet::new();
                loop {
                    tokio::time::sleep_until(next.into()).await;
                    if !shared.may_start(next) {
                        break;
                    }
                    let scheduled = next;
                    next += interval;
                    if shared.in_flight.load(Ordering::SeqCst) >= max_in_flight {
                        if scheduled >= shared.measure_from {
                            shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    shared.in_flight.fetch_add(1, Ordering::SeqCst);
                    let seq = shared.issued.fetch_add(1, Ordering::Relaxed);
                    let (shared, samples) = (Arc::clone(&shared), samples.clone());
                    let mut rng = workload::Rng::seeded(rng.next_u64());
                    requests.spawn(async move {
                        let sample = shared.request(scheduled, seq, 0, &mut rng).await;
                        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let _ = samples.send(sample);
                    });
                    // Keep finished tasks from piling up.
                    while requests.try_join_next().is_some() {}
                }
                while requests.join_next().await.is_some() {}
            });
        }
    }
    drop(samples_tx);
    // Collect while the load runs, reporting once a second; CPU is counted
    // from the end of the warm-up.
    let mut cpu_before = (config.warmup.is_zero()).then(|| cpu_counters(&target));
    let mut memory_before = (config.warmup.is_zero()).then(|| memory_at_start(&target));
    let mut samples = Vec::new();
    let mut last_line = Instant::now();
    let mut ok_since = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(200), samples_rx.recv()).await {
            Ok(Some(sample)) => {
                if sample.outcome == Outcome::Ok {
                    ok_since += 1;
                }
                if !sample.warmup {
                    samples.push(sample);
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        let measuring = Instant::now() >= shared.measure_from;
        if measuring && cpu_before.is_none() {
            cpu_before = Some(cpu_counters(&target));
            memory_before = Some(memory_at_start(&target));
        }
        if last_line.elapsed() >= Duration::from_secs(1) {
            progress(&format!(
                "{}: {:.0} ok/s, {} in flight",
                if measuring { "measuring" } else { "warm-up" },
                ok_since as f64 / last_line.elapsed().as_secs_f64(),
                shared.in_flight.load(Ordering::SeqCst)
            ));
            last_line = Instant::now();
            ok_since = 0;
        }
    }
    while tasks.join_next().await.is_some() {}
    let cpu = cpu_used(
        &target,
        &cpu_before.unwrap_or_else(|| cpu_counters(&target)),
    );
    let memory = memory_used(
        &target,
        &memory_before.unwrap_or_else(|| memory_at_start(&target)),
    );
    let dropped = shared.dropped.load(Ordering::Relaxed);
    Ok(Report::new(&config, &target, samples, dropped, cpu).with_memory(memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_and_its_peak_are_read_and_the_peak_reset() {
        let pid = std::process::id();
        let (now, peak) = resident(pid).expect("this process's /proc status");
        assert!(now > 0 && peak >= now, "RSS {now}, peak {peak}");

        // Touch 256 MiB, give it back: the peak stays up until it is reset.
        let big = vec![1u8; 256 << 20];
        assert_eq!(
            big.iter().step_by(4096).map(|&b| b as usize).sum::<usize>(),
            65_536
        );
        drop(big);
        let (_, raised) = resident(pid).expect("status");
        assert!(raised >= 256 << 20, "peak {raised} after touching 256 MiB");
        assert!(reset_peak(pid), "writing this process's clear_refs");
        let (_, lowered) = resident(pid).expect("status");
        assert!(
            lowered + (200 << 20) < raised,
            "peak {lowered} after the reset, {raised} before"
        );
        assert_eq!(resident(u32::MAX), None, "no such process");
    }
}
