//! What each request asks: a function and its arguments from a template.
//!
//! Templates are a function name and argument strings with placeholders:
//! `{unique}` (a key never used before), `{key}` (one of the seeded keys,
//! picked with the configured skew), `{seq}` (the request's number),
//! `{worker}`, and `{payload}` (`payload_size` characters). A workload that
//! uses `{key}` gets its keys created before the measurement starts.

/// The asset-transfer workloads, over the `basic` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `CreateAsset` of a new key each time: no conflicts.
    Unique,
    /// `UpdateAsset` of seeded keys: conflicts grow with skew and rate.
    Hot,
    /// `TransferAsset` of seeded keys: a read-write transaction.
    Transfer,
}

impl Kind {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "unique" => Ok(Kind::Unique),
            "hot" => Ok(Kind::Hot),
            "transfer" => Ok(Kind::Transfer),
            other => Err(format!(
                "unknown workload {other:?} (unique, hot, transfer)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Unique => "unique",
            Kind::Hot => "hot",
            Kind::Transfer => "transfer",
        }
    }
}

/// A function and argument templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub function: String,
    pub args: Vec<String>,
}

impl Template {
    pub fn new(function: &str, args: &[&str]) -> Self {
        Template {
            function: function.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn uses_keys(&self) -> bool {
        self.args.iter().any(|a| a.contains("{key}"))
    }
}

/// The requests of one run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    /// How many keys are seeded for `{key}`.
    pub keys: usize,
    /// 0 spreads requests evenly over the keys; towards 1 they crowd onto
    /// the first few (index = keys · u^(1/(1−skew)), u uniform in [0, 1)).
    pub skew: f64,
    pub payload_size: usize,
    /// What submits send (the kind's default when None).
    pub submit: Option<Template>,
    /// What evaluations send (`ReadAsset {key}` when None).
    pub evaluate: Option<Template>,
    /// Distinguishes this run's keys from every other run's.
    pub run_id: String,
}

impl Workload {
    pub fn new(kind: Kind) -> Self {
        let id: [u8; 4] = weft_crypto::random_bytes();
        Workload {
            kind,
            keys: 100,
            skew: 0.0,
            payload_size: 16,
            submit: None,
            evaluate: None,
            run_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn submit_template(&self) -> Template {
        self.submit.clone().unwrap_or_else(|| match self.kind {
            Kind::Unique => Template::new(
                "CreateAsset",
                &["{unique}", "{payload}", "5", "bench", "100"],
            ),
            Kind::Hot => Template::new(
                "UpdateAsset",
                &["{key}", "{payload}", "5", "bench", "{seq}"],
            ),
            Kind::Transfer => Template::new("TransferAsset", &["{key}", "owner{seq}"]),
        })
    }

    pub fn evaluate_template(&self) -> Template {
        self.evaluate
            .clone()
            .unwrap_or_else(|| Template::new("ReadAsset", &["{key}"]))
    }

    /// Whether keys must exist before the run, given what it sends.
    pub fn needs_seed(&self, submits: bool, evaluates: bool) -> bool {
        (submits && self.submit_template().uses_keys())
            || (evaluates && self.evaluate_template().uses_keys())
    }

    /// The `i`th seeded key.
    pub fn key(&self, index: usize) -> String {
        format!("bench-{}-k{index}", self.run_id)
    }

    /// The arguments that create seeded key `index`.
    pub fn seed_args(&self, index: usize) -> Vec<Vec<u8>> {
        ["CreateAsset", &self.key(index), "seed", "5", "bench", "100"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect()
    }

    /// The arguments that read seeded key `index` (asset-transfer's
    /// `ReadAsset`, as the seed is its `CreateAsset`).
    pub fn read_args(&self, index: usize) -> Vec<Vec<u8>> {
        [b"ReadAsset".to_vec(), self.key(index).into_bytes()].into()
    }

    /// Arguments (function first) for request `seq` of `worker`.
    pub fn args(
        &self,
        template: &Template,
        seq: u64,
        worker: usize,
        rng: &mut Rng,
    ) -> Vec<Vec<u8>> {
        let mut args = Vec::with_capacity(template.args.len() + 1);
        args.push(template.function.as_bytes().to_vec());
        for arg in &template.args {
            let mut text = arg.clone();
            if text.contains("{key}") {
                text = text.replace("{key}", &self.key(self.pick(rng)));
            }
            if text.contains("{unique}") {
                text = text.replace(
                    "{unique}",
                    &format!("bench-{}-u{worker}-{seq}", self.run_id),
                );
            }
            if text.contains("{payload}") {
                text = text.replace("{payload}", &"x".repeat(self.payload_size.max(1)));
            }
            text = text
                .replace("{seq}", &seq.to_string())
                .replace("{worker}", &worker.to_string());
            args.push(text.into_bytes());
        }
        args
    }

    /// A seeded key index, skewed towards 0.
    fn pick(&self, rng: &mut Rng) -> usize {
        let keys = self.keys.max(1);
        let u = rng.unit();
        let skew = self.skew.clamp(0.0, 0.999);
        let index = (keys as f64 * u.powf(1.0 / (1.0 - skew))) as usize;
        index.min(keys - 1)
    }
}

/// xorshift64*: fast, seeded per worker; not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        Rng(u64::from_le_bytes(weft_crypto::random_bytes()) | 1)
    }

    pub fn seeded(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In [0, n) (0 when n is 0); the modulo bias is negligible for small n.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(args: &[Vec<u8>]) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn templates_fill_placeholders() {
        let mut workload = Workload::new(Kind::Unique);
        workload.run_id = "r1".into();
        workload.payload_size = 3;
        let mut rng = Rng::seeded(7);
        let args = workload.args(&workload.submit_template(), 42, 3, &mut rng);
        assert_eq!(
            text(&args),
            ["CreateAsset", "bench-r1-u3-42", "xxx", "5", "bench", "100"]
        );
        assert!(!workload.needs_seed(true, false));
        assert!(workload.needs_seed(false, true), "reads use seeded keys");
        assert_eq!(
            text(&workload.seed_args(2))[..2],
            ["CreateAsset", "bench-r1-k2"]
        );
        assert_eq!(text(&workload.read_args(2)), ["ReadAsset", "bench-r1-k2"]);

        let custom = Template::new("Put", &["{seq}-{worker}", "{key}"]);
        workload.keys = 1;
        let args = workload.args(&custom, 5, 2, &mut rng);
        assert_eq!(text(&args), ["Put", "5-2", "bench-r1-k0"]);
    }

    #[test]
    fn skew_crowds_requests_onto_the_first_keys() {
        let mut workload = Workload::new(Kind::Hot);
        workload.keys = 100;
        let mut rng = Rng::seeded(99);
        let mut share_of_first_ten = |skew: f64| {
            workload.skew = skew;
            let hits = (0..10_000).filter(|_| workload.pick(&mut rng) < 10).count();
            hits as f64 / 10_000.0
        };
        let uniform = share_of_first_ten(0.0);
        let skewed = share_of_first_ten(0.9);
        assert!((0.07..0.13).contains(&uniform), "{uniform}");
        assert!(skewed > 0.6, "{skewed}");
    }

    #[test]
    fn workload_names() {
        assert_eq!(Kind::parse("transfer"), Ok(Kind::Transfer));
        assert!(
            Kind::parse("bulk")
                .unwrap_err()
                .contains("unique, hot, transfer")
        );
    }
}
