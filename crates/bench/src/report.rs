//! A run's numbers: throughput, latency per phase, errors and conflicts,
//! client CPU; as text for people, JSON for tools, HTML with charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::{Percentiles, Second, per_second, round};
use crate::{BenchConfig, CpuUse, Load, Mode, Outcome, Sample, ServerMemory, Target};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One kind of failure: its first line, how often it happened, and the
/// rest of its first occurrence (the peers' details of a gateway error).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorGroup {
    pub message: String,
    pub count: usize,
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was run.
    pub config: BenchConfig,
    pub endpoint: String,
    pub msp_id: String,
    pub connections: usize,
    /// From the start of the measurement to its last completion.
    pub window: Duration,
    pub submitted: usize,
    pub committed: usize,
    pub conflicts: usize,
    pub submit_errors: usize,
    pub evaluated: usize,
    pub evaluate_errors: usize,
    /// Open loop: requests due while `max_in_flight` were outstanding.
    pub dropped: u64,
    pub submit_total: Percentiles,
    pub endorse: Percentiles,
    pub submit: Percentiles,
    pub commit: Percentiles,
    pub evaluate: Percentiles,
    pub cpu: CpuUse,
    /// The target's servers' resident memory over the measurement.
    pub memory: Vec<ServerMemory>,
    /// The most frequent error messages, most frequent first.
    pub errors: Vec<ErrorGroup>,
    pub seconds: Vec<Second>,
}

impl Report {
    pub fn new(
        config: &BenchConfig,
        target: &Target,
        samples: Vec<Sample>,
        dropped: u64,
        cpu: CpuUse,
    ) -> Self {
        let window = samples
            .iter()
            .map(|s| s.start + s.total)
            .max()
            .unwrap_or_default();
        let (evaluations, submits): (Vec<&Sample>, Vec<&Sample>) =
            samples.iter().partition(|s| s.evaluate);
        let ok = |s: &&&Sample| s.outcome == Outcome::Ok;
        let phase = |f: fn(&Sample) -> Option<Duration>| {
            Percentiles::of(submits.iter().filter(ok).filter_map(|s| f(s)).collect())
        };
        let mut errors: BTreeMap<&str, ErrorGroup> = BTreeMap::new();
        for sample in &samples {
            if let Outcome::Failed(message) = &sample.outcome {
                let (first, detail) = message.split_once('\n').unwrap_or((message, ""));
                errors
                    .entry(first)
                    .or_insert_with(|| ErrorGroup {
                        message: first.to_owned(),
                        count: 0,
                        detail: detail.trim_end().to_owned(),
                    })
                    .count += 1;
            }
        }
        let mut errors: Vec<ErrorGroup> = errors.into_values().collect();
        errors.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });
        errors.truncate(5);
        let timeline: Vec<(Duration, Duration, bool)> = samples
            .iter()
            .map(|s| (s.start, s.total, s.outcome == Outcome::Ok))
            .collect();
        Report {
            config: config.clone(),
            endpoint: target.endpoint.clone(),
            msp_id: target.msp_id.clone(),
            connections: target.gateways.len(),
            window,
            submitted: submits.len(),
            committed: submits.iter().filter(ok).count(),
            conflicts: submits
                .iter()
                .filter(|s| s.outcome == Outcome::Conflict)
                .count(),
            submit_errors: submits
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
                .count(),
            evaluated: evaluations.iter().filter(ok).count(),
            evaluate_errors: evaluations
                .iter()
                .filter(|s| s.outcome != Outcome::Ok)
                .count(),
            dropped,
            submit_total: Percentiles::of(submits.iter().filter(ok).map(|s| s.total).collect()),
            endorse: phase(|s| s.endorse),
            submit: phase(|s| s.submit),
            commit: phase(|s| s.commit),
            evaluate: Percentiles::of(evaluations.iter().filter(ok).map(|s| s.total).collect()),
            cpu,
            memory: Vec::new(),
            errors,
            seconds: per_second(&timeline),
        }
    }

    /// The same report, with the servers' memory.
    pub fn with_memory(self, memory: Vec<ServerMemory>) -> Self {
        Report { memory, ..self }
    }

    fn per_second(&self, count: usize) -> f64 {
        let seconds = self.window.as_secs_f64();
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    }

    /// Committed transactions per second; evaluations per second for an
    /// evaluate-only run.
    pub fn tps(&self) -> f64 {
        match self.config.mode {
            Mode::Evaluate => self.per_second(self.evaluated),
            _ => self.per_second(self.committed),
        }
    }

    fn rate(part: usize, whole: usize) -> f64 {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    }

    fn successes(&self) -> usize {
        self.committed + self.evaluated
    }

    fn cores(&self, seconds: f64) -> f64 {
        if self.window.is_zero() {
            0.0
        } else {
            seconds / self.window.as_secs_f64()
        }
    }

    /// Client CPU per successful request, in microseconds.
    pub fn cpu_per_request_us(&self) -> f64 {
        match self.successes() {
            0 => 0.0,
            done => self.cpu.client * 1e6 / done as f64,
        }
    }

    /// The servers' CPU per successful request, in milliseconds.
    pub fn server_ms_per_request(&self) -> f64 {
        match self.successes() {
            0 => 0.0,
            done => self.cpu.server_total() * 1e3 / done as f64,
        }
    }

    fn load_text(&self) -> String {
        match self.config.load {
            Load::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
            Load::Open {
                rate,
                max_in_flight,
            } => {
                format!("open loop, {rate} req/s, at most {max_in_flight} in flight")
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let load = match self.config.load {
            Load::Closed { concurrency } => {
                serde_json::json!({ "kind": "closed", "concurrency": concurrency })
            }
            Load::Open {
                rate,
                max_in_flight,
            } => {
                serde_json::json!({ "kind": "open", "rate": rate, "max_in_flight": max_in_flight })
            }
        };
        serde_json::json!({
            "tps": round(self.tps()),
            "mode": self.config.mode.name(),
            "load": load,
            "workload": self.config.workload.kind.name(),
            "channel": self.config.channel,
            "chaincode": self.config.chaincode,
            "endpoint": self.endpoint,
            "msp_id": self.msp_id,
            "connections": self.connections,
            "duration_s": round(self.window.as_secs_f64()),
            "warmup_s": round(self.config.warmup.as_secs_f64()),
            "submitted": self.submitted,
            "committed": self.committed,
            "mvcc_conflicts": self.conflicts,
            "submit_errors": self.submit_errors,
            "evaluated": self.evaluated,
            "evaluate_errors": self.evaluate_errors,
            "evaluations_per_second": round(self.per_second(self.evaluated)),
            "conflict_rate": round(Self::rate(self.conflicts, self.submitted)),
            "error_rate": round(Self::rate(self.submit_errors + self.evaluate_errors, self.submitted + self.evaluated + self.evaluate_errors)),
            "dropped": self.dropped,
            "latency": {
                "submit": self.submit_total.to_json(),
                "endorse": self.endorse.to_json(),
                "order": self.submit.to_json(),
                "commit": self.commit.to_json(),
                "evaluate": self.evaluate.to_json(),
            },
            "client_cpu": {
                "seconds": round(self.cpu.client),
                "cores": round(self.cores(self.cpu.client)),
                "us_per_request": round(self.cpu_per_request_us()),
            },
            "server_cpu": {
                "seconds": round(self.cpu.server_total()),
                "cores": round(self.cores(self.cpu.server_total())),
                "ms_per_request": round(self.server_ms_per_request()),
                "processes": self.cpu.servers.iter().map(|(name, seconds)| serde_json::json!({
                    "name": name, "seconds": round(*seconds), "cores": round(self.cores(*seconds)),
                })).collect::<Vec<_>>(),
            },
            "server_memory": {
                "processes": self.memory.iter().map(|m| serde_json::json!({
                    "name": m.name,
                    "start_rss_mib": round(mib(m.start)),
                    "peak_rss_mib": round(mib(m.peak)),
                    "peak_since": if m.peak_is_lifetime { "process start" } else { "measurement start" },
                })).collect::<Vec<_>>(),
            },
            "errors": self.errors.iter().map(|e| serde_json::json!({
                "message": e.message, "count": e.count, "detail": e.detail,
            })).collect::<Vec<_>>(),
            "per_second": self.seconds.iter().map(|s| serde_json::json!({
                "second": s.second, "ok": s.ok, "failed": s.failed, "p50_ms": round(s.p50), "p99_ms": round(s.p99),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "weft bench {}: {:.1} s measured after {:.1} s warm-up; {}; workload {}; {} on {} via {} as {}",
            self.config.mode.name(),
            self.window.as_secs_f64(),
            self.config.warmup.as_secs_f64(),
            self.load_text(),
            self.config.workload.kind.name(),
            self.config.chaincode,
            self.config.channel,
            self.endpoint,
            self.msp_id
        );
        if self.submitted > 0 {
            let _ = writeln!(
                out,
                "  submitted {}: committed {} ({:.1} tx/s), MVCC conflicts {} ({:.2}%), errors {} ({:.2}%)",
                self.submitted,
                self.committed,
                self.per_second(self.committed),
                self.conflicts,
                100.0 * Self::rate(self.conflicts, self.submitted),
                self.submit_errors,
                100.0 * Self::rate(self.submit_errors, self.submitted)
            );
        }
        if self.evaluated + self.evaluate_errors > 0 {
            let _ = writeln!(
                out,
                "  evaluated {} ({:.1}/s), errors {}",
                self.evaluated,
                self.per_second(self.evaluated),
                self.evaluate_errors
            );
        }
        if self.dropped > 0 {
            let _ = writeln!(
                out,
                "  dropped {} requests due while the in-flight limit was reached",
                self.dropped
            );
        }
        let _ = writeln!(
            out,
            "  latency (ms)        p50       p90       p99       max"
        );
        let rows = [
            ("submit (total)", self.submit_total),
            ("  endorse", self.endorse),
            ("  order", self.submit),
            ("  commit wait", self.commit),
            ("evaluate", self.evaluate),
        ];
        for (name, p) in rows {
            if p.count > 0 {
                let _ = writeln!(
                    out,
                    "  {name:<16}{:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    p.p50, p.p90, p.p99, p.max
                );
            }
        }
        let _ = writeln!(
            out,
            "  client CPU: {:.1} s ({:.2} cores), {:.0} µs per request",
            self.cpu.client,
            self.cores(self.cpu.client),
            self.cpu_per_request_us()
        );
        if !self.cpu.servers.is_empty() {
            let each: Vec<String> = self
                .cpu
                .servers
                .iter()
                .map(|(name, seconds)| format!("{name} {:.2}", self.cores(*seconds)))
                .collect();
            let _ = writeln!(
                out,
                "  server CPU: {:.1} s ({:.2} cores), {:.2} ms per request; cores: {}",
                self.cpu.server_total(),
                self.cores(self.cpu.server_total()),
                self.server_ms_per_request(),
                each.join(", ")
            );
        }
        if !self.memory.is_empty() {
            let each: Vec<String> = self
                .memory
                .iter()
                .map(|m| format!("{} {:.0} → {:.0}", m.name, mib(m.start), mib(m.peak)))
                .collect();
            let since = if self.memory.iter().any(|m| m.peak_is_lifetime) {
                "peak since the process started (its peak could not be reset)"
            } else {
                "peak during the measurement"
            };
            let _ = writeln!(
                out,
                "  server RSS (MiB), at the start → {since}: {}",
                each.join(", ")
            );
        }
        for error in &self.errors {
            let _ = writeln!(out, "  error ×{}: {}", error.count, error.message);
            // The first occurrence's details: which peer said what.
            for line in error.detail.lines() {
                let _ = writeln!(out, "    {}", line.trim_start());
            }
        }
        out
    }

    /// A self-contained page: the text report and per-second charts of
    /// throughput and latency (inline SVG, no scripts).
    pub fn to_html(&self) -> String {
        let throughput: Vec<f64> = self.seconds.iter().map(|s| s.ok as f64).collect();
        let failed: Vec<f64> = self.seconds.iter().map(|s| s.failed as f64).collect();
        let p50: Vec<f64> = self.seconds.iter().map(|s| s.p50).collect();
        let p99: Vec<f64> = self.seconds.iter().map(|s| s.p99).collect();
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>weft bench {mode}</title>\n\
             <style>body{{font-family:sans-serif;margin:2em;max-width:60em}}pre{{background:#f4f4f4;padding:1em}}\
             .legend span{{margin-right:1.5em}}</style></head><body>\n\
             <h1>weft bench {mode}: {tps:.1} {unit}/s</h1>\n<pre>{text}</pre>\n\
             <h2>Completed per second</h2>\n{chart1}\n<p class=\"legend\"><span style=\"color:#1f77b4\">■ ok</span><span style=\"color:#d62728\">■ failed or conflicting</span></p>\n\
             <h2>Latency per second (ms)</h2>\n{chart2}\n<p class=\"legend\"><span style=\"color:#2ca02c\">■ p50</span><span style=\"color:#ff7f0e\">■ p99</span></p>\n\
             </body></html>\n",
            mode = self.config.mode.name(),
            tps = self.tps(),
            unit = if self.config.mode == Mode::Evaluate {
                "evaluations"
            } else {
                "tx"
            },
            text = escape(&self.to_text()),
            chart1 = chart(&[(&throughput, "#1f77b4"), (&failed, "#d62728")]),
            chart2 = chart(&[(&p50, "#2ca02c"), (&p99, "#ff7f0e")]),
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of series over seconds, with the y axis from 0.
fn chart(series: &[(&Vec<f64>, &str)]) -> String {
    let (width, height, left, bottom) = (720.0, 240.0, 50.0, 20.0);
    let points = series.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |i: usize| left + (width - left) * i as f64 / (points.max(2) - 1) as f64;
    let y = |v: f64| (height - bottom) * (1.0 - v / top);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <line x1=\"{left}\" y1=\"0\" x2=\"{left}\" y2=\"{0}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{0}\" x2=\"{width}\" y2=\"{0}\" stroke=\"#888\"/>\
         <text x=\"0\" y=\"12\" font-size=\"11\">{top:.0}</text><text x=\"0\" y=\"{0}\" font-size=\"11\">0</text>\
         <text x=\"{left}\" y=\"{height}\" font-size=\"11\">0 s</text><text x=\"{1}\" y=\"{height}\" font-size=\"11\">{2} s</text>",
        height - bottom,
        width - 40.0,
        points.saturating_sub(1),
    );
    for (values, color) in series {
        let line: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stop;
    use crate::workload::{Kind, Workload};

    fn sample(start_ms: u64, total_ms: u64, evaluate: bool, outcome: Outcome) -> Sample {
        let ms = Duration::from_millis;
        Sample {
            start: ms(start_ms),
            warmup: false,
            evaluate,
            total: ms(total_ms),
            endorse: (!evaluate).then(|| ms(total_ms / 4)),
            submit: (!evaluate).then(|| ms(total_ms / 4)),
            commit: (!evaluate).then(|| ms(total_ms / 2)),
            outcome,
        }
    }

    #[test]
    fn numbers_add_up() {
        let config = BenchConfig {
            mode: Mode::Mixed { read_ratio: 0.5 },
            load: Load::Closed { concurrency: 4 },
            stop: Stop::After(Duration::from_secs(2)),
            warmup: Duration::ZERO,
            channel: "mychannel".into(),
            chaincode: "basic".into(),
            workload: Workload::new(Kind::Unique),
        };
        let target = Target {
            gateways: Vec::new(),
            endpoint: "peer:7051".into(),
            msp_id: "Org1MSP".into(),
            servers: Vec::new(),
        };
        let samples = vec![
            sample(0, 40, false, Outcome::Ok),
            sample(100, 80, false, Outcome::Ok),
            sample(500, 100, false, Outcome::Conflict),
            sample(
                900,
                1100,
                false,
                Outcome::Failed("endorse: boom\n  detail".into()),
            ),
            sample(1000, 4, true, Outcome::Ok),
        ];
        let cpu = CpuUse {
            client: 0.5,
            servers: vec![("peer0".into(), 1.5), ("orderer".into(), 0.3)],
        };
        let memory = vec![
            ServerMemory {
                name: "peer0".into(),
                start: 60 << 20,
                peak: 75 << 20,
                peak_is_lifetime: false,
            },
            ServerMemory {
                name: "orderer".into(),
                start: 80 << 20,
                peak: 96 << 20,
                peak_is_lifetime: false,
            },
        ];
        let report = Report::new(&config, &target, samples, 0, cpu).with_memory(memory);
        assert_eq!(report.window, Duration::from_secs(2));
        assert_eq!(
            (
                report.submitted,
                report.committed,
                report.conflicts,
                report.submit_errors
            ),
            (4, 2, 1, 1)
        );
        assert_eq!(report.tps(), 1.0, "two committed in two seconds");
        assert_eq!(
            report.submit_total.p99, 80.0,
            "only committed transactions count for latency"
        );
        assert_eq!(report.commit.p50, 20.0);
        assert_eq!(
            report.errors,
            vec![ErrorGroup {
                message: "endorse: boom".into(),
                count: 1,
                detail: "  detail".into()
            }]
        );
        assert_eq!(report.cpu_per_request_us(), 0.5e6 / 3.0);
        assert!((report.server_ms_per_request() - 1.8e3 / 3.0).abs() < 1e-9);
        let json = report.to_json();
        assert_eq!(json["tps"], 1.0);
        assert_eq!(json["mvcc_conflicts"], 1);
        assert_eq!(json["latency"]["evaluate"]["p50_ms"], 4.0);
        assert_eq!(json["per_second"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["server_cpu"]["seconds"], 1.8);
        assert_eq!(json["server_cpu"]["processes"][0]["name"], "peer0");
        assert_eq!(json["server_cpu"]["processes"][0]["cores"], 0.75);
        let memory = &json["server_memory"]["processes"][1];
        assert_eq!(
            (
                &memory["name"],
                &memory["start_rss_mib"],
                &memory["peak_rss_mib"]
            ),
            (&"orderer".into(), &80.0.into(), &96.0.into())
        );
        assert_eq!(memory["peak_since"], "measurement start");
        let text = report.to_text();
        assert!(
            text.contains("committed 2 (1.0 tx/s), MVCC conflicts 1 (25.00%)"),
            "{text}"
        );
        assert!(
            text.contains("server CPU: 1.8 s (0.90 cores), 600.00 ms per request; cores: peer0 0.75, orderer 0.15"),
            "{text}"
        );
        assert!(
            text.contains("server RSS (MiB), at the start → peak during the measurement: peer0 60 → 75, orderer 80 → 96"),
            "{text}"
        );
        assert!(
            text.contains("  error ×1: endorse: boom\n    detail\n"),
            "the first occurrence's details follow its line: {text}"
        );
        assert_eq!(json["errors"][0]["detail"], "  detail");
        let html = report.to_html();
        assert!(
            html.contains("<svg") && html.contains("weft bench mixed: 1.0 tx/s"),
            "{html}"
        );
    }
}
