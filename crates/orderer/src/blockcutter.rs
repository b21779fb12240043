//! Fabric's block cutter, deterministic: time is passed in, never read.
//!
//! Rules (Fabric's `blockcutter`): a message larger than PreferredMaxBytes
//! goes alone into its own batch, after cutting what is pending; a message
//! that would take the pending batch over PreferredMaxBytes cuts the pending
//! batch first; a batch is cut when it reaches MaxMessageCount; and a pending
//! batch is cut when BatchTimeout has passed since its first message.
//! AbsoluteMaxBytes is enforced earlier, by Broadcast.

use std::time::Duration;

/// A batch's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutterConfig {
    pub max_message_count: u32,
    pub preferred_max_bytes: u32,
    pub timeout: Duration,
}

/// Collects messages into batches. `T` is the message with whatever the
/// caller keeps alongside it (its responder, say).
#[derive(Debug)]
pub struct BlockCutter<T> {
    config: CutterConfig,
    pending: Vec<T>,
    pending_bytes: u64,
    /// When the first pending message arrived (the caller's clock).
    pending_since: Option<Duration>,
}

impl<T> BlockCutter<T> {
    pub fn new(config: CutterConfig) -> Self {
        Self {
            config,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
        }
    }

    /// Adds a message of `size` bytes at time `now`; returns the batches cut
    /// by it (zero, one or two), oldest first.
    pub fn ordered(&mut self, message: T, size: u64, now: Duration) -> Vec<Vec<T>> {
        let mut batches = Vec::new();
        let preferred = u64::from(self.config.preferred_max_bytes);
        if size > preferred {
            if let Some(batch) = self.cut() {
                batches.push(batch);
            }
            batches.push(vec![message]);
            return batches;
        }
        if self.pending_bytes + size > preferred
            && let Some(batch) = self.cut()
        {
            batches.push(batch);
        }
        if self.pending.is_empty() {
            self.pending_since = Some(now);
        }
        self.pending.push(message);
        self.pending_bytes += size;
        if self.pending.len() as u64 >= u64::from(self.config.max_message_count)
            && let Some(batch) = self.cut()
        {
            batches.push(batch);
        }
        batches
    }

    /// When the first pending message arrived, if any (the caller's clock).
    pub fn filling_since(&self) -> Option<Duration> {
        self.pending_since
    }

    /// When the pending batch times out, if there is one.
    pub fn deadline(&self) -> Option<Duration> {
        self.pending_since.map(|since| since + self.config.timeout)
    }

    /// Cuts the pending batch if its timeout has passed at `now`.
    pub fn tick(&mut self, now: Duration) -> Option<Vec<T>> {
        match self.deadline() {
            Some(deadline) if now >= deadline => self.cut(),
            _ => None,
        }
    }

    /// Cuts whatever is pending.
    pub fn cut(&mut self) -> Option<Vec<T>> {
        self.pending_since = None;
        self.pending_bytes = 0;
        if self.pending.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.pending))
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cutter() -> BlockCutter<&'static str> {
        BlockCutter::new(CutterConfig {
            max_message_count: 3,
            preferred_max_bytes: 100,
            timeout: MS * 100,
        })
    }

    /// One step of a scenario: a message (name, size) at a time, or a tick.
    enum Step {
        Msg(&'static str, u64, u64),
        Tick(u64),
    }
    use Step::*;

    /// (name, steps, batches cut, messages left pending).
    type Case = (&'static str, Vec<Step>, Vec<Vec<&'static str>>, usize);

    #[test]
    fn table() {
        let cases: Vec<Case> = vec![
            (
                "fewer than max count: nothing cut",
                vec![Msg("a", 10, 0), Msg("b", 10, 1)],
                vec![],
                2,
            ),
            (
                "max count cuts",
                vec![
                    Msg("a", 10, 0),
                    Msg("b", 10, 1),
                    Msg("c", 10, 2),
                    Msg("d", 10, 3),
                ],
                vec![vec!["a", "b", "c"]],
                1,
            ),
            (
                "oversized message goes alone after the pending batch",
                vec![Msg("a", 10, 0), Msg("big", 101, 1), Msg("b", 10, 2)],
                vec![vec!["a"], vec!["big"]],
                1,
            ),
            (
                "oversized message with nothing pending",
                vec![Msg("big", 500, 0)],
                vec![vec!["big"]],
                0,
            ),
            (
                "overflowing preferred bytes cuts the pending batch first",
                vec![Msg("a", 60, 0), Msg("b", 50, 1)],
                vec![vec!["a"]],
                1,
            ),
            (
                "exactly preferred bytes fits",
                vec![Msg("a", 60, 0), Msg("b", 40, 1)],
                vec![],
                2,
            ),
            (
                "timeout cuts, measured from the first pending message",
                vec![Msg("a", 10, 0), Msg("b", 10, 50), Tick(99), Tick(100)],
                vec![vec!["a", "b"]],
                0,
            ),
            (
                "a tick with nothing pending cuts nothing",
                vec![Tick(1000)],
                vec![],
                0,
            ),
            (
                "the timer restarts with the next batch",
                vec![
                    Msg("a", 10, 0),
                    Tick(100),
                    Msg("b", 10, 150),
                    Tick(200),
                    Tick(250),
                ],
                vec![vec!["a"], vec!["b"]],
                0,
            ),
            (
                "a count cut resets the timer",
                vec![
                    Msg("a", 10, 0),
                    Msg("b", 10, 10),
                    Msg("c", 10, 20),
                    Msg("d", 10, 90),
                    Tick(100),
                    Tick(190),
                ],
                vec![vec!["a", "b", "c"], vec!["d"]],
                0,
            ),
        ];
        for (name, steps, expected, pending) in cases {
            let mut cutter = cutter();
            let mut batches = Vec::new();
            for step in steps {
                match step {
                    Msg(m, size, at) => batches.extend(cutter.ordered(m, size, MS * at as u32)),
                    Tick(at) => batches.extend(cutter.tick(MS * at as u32)),
                }
            }
            assert_eq!(batches, expected, "{name}");
            assert_eq!(cutter.pending(), pending, "{name}: pending");
        }
    }

    #[test]
    fn deadline_follows_the_first_pending_message() {
        let mut cutter = cutter();
        assert_eq!(cutter.deadline(), None);
        cutter.ordered("a", 1, MS * 5);
        cutter.ordered("b", 1, MS * 30);
        assert_eq!(cutter.deadline(), Some(MS * 105));
        assert_eq!(cutter.cut(), Some(vec!["a", "b"]));
        assert_eq!(cutter.deadline(), None);
        assert_eq!(cutter.cut(), None);
    }
}
