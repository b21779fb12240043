//! Node metrics in Prometheus' text exposition format (0.0.4), named as
//! Fabric names them: a counter is exposed under its own name (Fabric's
//! `endorser_proposals_received`, not `…_total`), so dashboards and alerts
//! written for Fabric work unchanged. (`prometheus-client` always appends
//! `_total` to counters, which is why weft encodes its own.)
//!
//! A [`Registry`] holds families of [`Counter`]s, [`Gauge`]s and
//! [`Histogram`]s by label values; `family.with(&[…])` hands out the child,
//! which hot paths keep (an increment is one atomic add).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Prometheus' default histogram buckets, in seconds (Fabric's too).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, delta: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Observations counted into buckets (upper bounds), with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last is +Inf.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// Observes the seconds since `start`.
    pub fn observe_since(&self, start: std::time::Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// What a family's children are: [`Counter`], [`Gauge`], [`Histogram`].
pub trait Metric: Send + Sync + 'static {
    const KIND: &'static str;
    fn encode(&self, name: &str, labels: &str, out: &mut String);
}

impl Metric for Counter {
    const KIND: &'static str = "counter";
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{} {}", braced(labels), self.get());
    }
}

impl Metric for Gauge {
    const KIND: &'static str = "gauge";
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{} {}", braced(labels), number(self.get()));
    }
}

impl Metric for Histogram {
    const KIND: &'static str = "histogram";
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{} {}", braced(labels), number(sum));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braced(labels));
    }
}

fn braced(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Metrics of one name, one per combination of label values.
pub struct Family<M> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    make: Box<dyn Fn() -> M + Send + Sync>,
    /// (label values, child), sorted by label values.
    children: RwLock<Vec<(Vec<String>, Arc<M>)>>,
    /// In a disabled registry, the one child every `with` hands out
    /// (recorded into, never exported).
    discard: Option<Arc<M>>,
}

impl<M: Metric> Family<M> {
    /// The child for these label values (in the family's label order),
    /// created at first use.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        if let Some(discard) = &self.discard {
            return Arc::clone(discard);
        }
        // Sorted by label values; a hit costs a binary search, no allocation.
        let find = |children: &[(Vec<String>, Arc<M>)]| {
            children.binary_search_by(|(key, _)| {
                key.iter().map(String::as_str).cmp(values.iter().copied())
            })
        };
        {
            let children = self.children.read().unwrap_or_else(|p| p.into_inner());
            if let Ok(at) = find(&children) {
                return Arc::clone(&children[at].1);
            }
        }
        let mut children = self.children.write().unwrap_or_else(|p| p.into_inner());
        match find(&children) {
            Ok(at) => Arc::clone(&children[at].1),
            Err(at) => {
                let child = Arc::new((self.make)());
                let key = values.iter().map(|v| (*v).to_owned()).collect();
                children.insert(at, (key, Arc::clone(&child)));
                child
            }
        }
    }
}

/// A family, whatever its kind, as the registry encodes it.
trait Encode: Send + Sync {
    fn encode(&self, out: &mut String);
}

impl<M: Metric> Encode for Family<M> {
    fn encode(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::KIND);
        for (values, child) in self
            .children
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels: Vec<String> = self
                .labels
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            child.encode(self.name, &labels.join(","), out);
        }
    }
}

/// Text appended at scrape time (process metrics read from /proc).
pub type Collector = Box<dyn Fn(&mut String) + Send + Sync>;

/// What a [`Collector`] writes for one family: its HELP and TYPE lines,
/// then one sample per (labels as (name, value) pairs, value).
pub fn write_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    samples: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(label, value)| format!("{label}=\"{}\"", escape(value)))
            .collect();
        let _ = writeln!(out, "{name}{} {}", braced(&labels.join(",")), number(value));
    }
}

/// Every metric a node exports, in registration order.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<dyn Encode>>>,
    collectors: Mutex<Vec<Collector>>,
    /// Fabric's `metrics.provider: disabled`: nothing is kept or exported.
    disabled: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry that keeps nothing: for a node without an operations
    /// service, where nobody could read its metrics. Families hand out one
    /// shared child without looking up labels; `encode` is empty.
    pub fn disabled() -> Self {
        Registry {
            disabled: true,
            ..Registry::default()
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    fn register<M: Metric>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        make: Box<dyn Fn() -> M + Send + Sync>,
    ) -> Arc<Family<M>> {
        let family = Arc::new(Family {
            name,
            help,
            labels,
            discard: self.disabled.then(|| Arc::new(make())),
            make,
            children: RwLock::default(),
        });
        if self.disabled {
            return family;
        }
        self.families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&family) as Arc<dyn Encode>);
        family
    }

    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Counter>> {
        self.register(name, help, labels, Box::new(Counter::default))
    }

    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Gauge>> {
        self.register(name, help, labels, Box::new(Gauge::default))
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Arc<Family<Histogram>> {
        self.register(
            name,
            help,
            labels,
            Box::new(move || Histogram::new(buckets)),
        )
    }

    /// Adds text produced at each scrape.
    pub fn collect(&self, collector: Collector) {
        if self.disabled {
            return;
        }
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    /// Every metric, in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for family in self
            .families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            family.encode(&mut out);
        }
        for collector in self
            .collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            collector(&mut out);
        }
        out
    }
}

/// The process metrics Prometheus' client libraries export (CPU seconds,
/// resident and virtual memory, open and maximum file descriptors, start
/// time), read from /proc at each scrape.
pub fn process_collector() -> Collector {
    Box::new(|out: &mut String| {
        let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok() else {
            return;
        };
        // The fields after the command name (which may contain spaces).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        // /proc reports CPU time in USER_HZ ticks, 100 per second on Linux.
        let ticks = 100.0;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v * 1024.0)
        };
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let mut gauge = |name: &str, help: &str, kind: &str, value: Option<f64>| {
            if let Some(value) = value {
                write_family(out, name, help, kind, [(&[][..], value)]);
            }
        };
        gauge(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            field(14).zip(field(15)).map(|(u, s)| (u + s) / ticks),
        );
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            boot.zip(field(22)).map(|(b, start)| b + start / ticks),
        );
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            kib("VmSize:"),
        );
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            kib("VmRSS:"),
        );
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as f64),
        );
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            });
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            max_fds,
        );
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_in_the_text_format_with_fabrics_names() {
        let registry = Registry::default();
        let proposals = registry.counter(
            "endorser_proposals_received",
            "The number of proposals received.",
            &[],
        );
        let height = registry.gauge(
            "ledger_blockchain_height",
            "Height of the chain in blocks.",
            &["channel"],
        );
        let duration = registry.histogram(
            "endorser_proposal_duration",
            "The time to complete a proposal.",
            &["channel", "chaincode", "success"],
            &[0.1, 1.0],
        );
        proposals.with(&[]).add(3);
        height.with(&["mychannel"]).set(7.0);
        height.with(&["other\"one"]).set(1.0);
        let child = duration.with(&["mychannel", "basic", "true"]);
        child.observe(0.05);
        child.observe(0.5);
        child.observe(5.0);
        let text = registry.encode();
        for line in [
            "# TYPE endorser_proposals_received counter",
            "endorser_proposals_received 3",
            "# TYPE ledger_blockchain_height gauge",
            "ledger_blockchain_height{channel=\"mychannel\"} 7",
            "ledger_blockchain_height{channel=\"other\\\"one\"} 1",
            "# TYPE endorser_proposal_duration histogram",
            "endorser_proposal_duration_bucket{channel=\"mychannel\",chaincode=\"basic\",success=\"true\",le=\"0.1\"} 1",
            "endorser_proposal_duration_bucket{channel=\"mychannel\",chaincode=\"basic\",success=\"true\",le=\"1\"} 2",
            "endorser_proposal_duration_bucket{channel=\"mychannel\",chaincode=\"basic\",success=\"true\",le=\"+Inf\"} 3",
            "endorser_proposal_duration_sum{channel=\"mychannel\",chaincode=\"basic\",success=\"true\"} 5.55",
            "endorser_proposal_duration_count{channel=\"mychannel\",chaincode=\"basic\",success=\"true\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // The same child every time.
        assert!(Arc::ptr_eq(
            &height.with(&["mychannel"]),
            &height.with(&["mychannel"])
        ));
    }

    #[test]
    fn a_disabled_registry_hands_out_one_child_and_exports_nothing() {
        let registry = Registry::disabled();
        let height = registry.gauge("ledger_blockchain_height", "Height.", &["channel"]);
        height.with(&["a"]).set(3.0);
        assert!(Arc::ptr_eq(&height.with(&["a"]), &height.with(&["b"])));
        registry.collect(process_collector());
        assert_eq!(registry.encode(), "");
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let registry = Registry::default();
        registry.collect(process_collector());
        // Spend CPU until a 10 ms tick has been counted.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let text = loop {
            let text = registry.encode();
            if !text.contains("process_cpu_seconds_total 0\n") {
                break text;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "{text}"
            );
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        };
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name}\n{text}"));
            let value: f64 = line[name.len()..].parse().expect("a number");
            assert!(value > 0.0, "{line}");
        }
    }
}
