//! Latency percentiles and per-second series from samples.

use std::time::Duration;

/// p50 / p90 / p99 / max of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; all zero for no values.
    pub fn of(mut values: Vec<Duration>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| {
            let index = ((p / 100.0) * values.len() as f64).ceil() as usize;
            ms(values[index.clamp(1, values.len()) - 1])
        };
        let total: Duration = values.iter().sum();
        Percentiles {
            count: values.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: ms(values[values.len() - 1]),
            mean: ms(total) / values.len() as f64,
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "p50_ms": round(self.p50),
            "p90_ms": round(self.p90),
            "p99_ms": round(self.p99),
            "max_ms": round(self.max),
            "mean_ms": round(self.mean),
        })
    }
}

/// Three decimals are plenty for milliseconds and rates.
pub fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// One second of a run: successes, and p50/p99 of their latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Second {
    pub second: u64,
    pub ok: usize,
    pub failed: usize,
    pub p50: f64,
    pub p99: f64,
}

/// Groups (start offset, latency, ok) by the second in which each request
/// completed, from 0 to the last second with a completion.
pub fn per_second(samples: &[(Duration, Duration, bool)]) -> Vec<Second> {
    let Some(last) = samples
        .iter()
        .map(|(start, latency, _)| *start + *latency)
        .max()
    else {
        return Vec::new();
    };
    let seconds = last.as_secs() + 1;
    let mut buckets: Vec<(Vec<Duration>, usize)> = vec![(Vec::new(), 0); seconds as usize];
    for (start, latency, ok) in samples {
        let bucket = &mut buckets[(*start + *latency).as_secs() as usize];
        if *ok {
            bucket.0.push(*latency);
        } else {
            bucket.1 += 1;
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(second, (latencies, failed))| {
            let p = Percentiles::of(latencies);
            Second {
                second: second as u64,
                ok: p.count,
                failed,
                p50: p.p50,
                p99: p.p99,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(ms).collect());
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(p.mean, 50.5);
        let one = Percentiles::of(vec![ms(7)]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }

    #[test]
    fn seconds_count_completions() {
        let samples = [
            (ms(100), ms(50), true),
            (ms(900), ms(200), true),
            (ms(1500), ms(10), false),
            (ms(2100), ms(30), true),
        ];
        let seconds = per_second(&samples);
        let counts: Vec<(usize, usize)> = seconds.iter().map(|s| (s.ok, s.failed)).collect();
        assert_eq!(counts, [(1, 0), (1, 1), (1, 0)]);
        assert_eq!(seconds[1].p50, 200.0);
    }
}
