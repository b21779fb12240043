//! The clock seam: services ask a [`Clock`] for the time, so tests can run
//! a node's time checks at any instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a service gets the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;

    fn now_unix_ms(&self) -> i64 {
        unix(self.now()).as_millis() as i64
    }
}

fn unix(time: SystemTime) -> Duration {
    time.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that says what it is told (tests of time windows).
#[derive(Debug)]
pub struct FixedClock(pub std::sync::Mutex<SystemTime>);

impl FixedClock {
    pub fn at_unix_seconds(seconds: u64) -> Self {
        FixedClock(std::sync::Mutex::new(
            UNIX_EPOCH + Duration::from_secs(seconds),
        ))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Fabric's default for how far a signed request's timestamp may be from
/// the node's clock (Deliver's `TimeWindow`): 15 minutes.
pub const REQUEST_TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Checks that a request made at `request_unix_ms` is within `window` of
/// `now_unix_ms`, either way (clocks differ both ways).
pub fn check_window(
    request_unix_ms: i64,
    now_unix_ms: i64,
    window: Duration,
) -> Result<(), String> {
    let skew_ms = now_unix_ms.saturating_sub(request_unix_ms);
    if skew_ms.unsigned_abs() <= window.as_millis() as u64 {
        return Ok(());
    }
    let (how, by) = if skew_ms > 0 {
        ("old", skew_ms)
    } else {
        ("in the future", -skew_ms)
    };
    Err(format!(
        "the request's timestamp is {} s {how}, outside the node's window of {} s",
        by / 1000,
        window.as_secs()
    ))
}

/// [`check_window`] for a protobuf timestamp (a channel header's); a
/// missing timestamp is refused.
pub fn check_timestamp(
    timestamp: Option<&weft_protos::Timestamp>,
    now_unix_ms: i64,
    window: Duration,
) -> Result<(), String> {
    let timestamp = timestamp.ok_or("the request has no timestamp")?;
    let ms = timestamp
        .seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(timestamp.nanos) / 1_000_000);
    check_window(ms, now_unix_ms, window)
}

/// The current UTC time in RFC 3339, to the second: `2026-11-21T19:07:11Z`.
pub fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_symmetric_and_inclusive() {
        let window = Duration::from_secs(900);
        let now = 1_000_000_000;
        assert!(check_window(now, now, window).is_ok());
        assert!(check_window(now - 900_000, now, window).is_ok());
        assert!(check_window(now + 900_000, now, window).is_ok());
        let old = check_window(now - 900_001, now, window).unwrap_err();
        assert!(old.contains("old"), "{old}");
        let future = check_window(now + 3_600_000, now, window).unwrap_err();
        assert!(future.contains("3600 s in the future"), "{future}");
        assert!(check_window(i64::MIN, now, window).is_err());
        assert!(check_window(i64::MAX, now, window).is_err());
    }

    #[test]
    fn missing_timestamp_is_refused() {
        assert!(check_timestamp(None, 0, REQUEST_TIME_WINDOW).is_err());
        let ts = weft_protos::Timestamp {
            seconds: 100,
            nanos: 0,
        };
        assert!(check_timestamp(Some(&ts), 100_000, REQUEST_TIME_WINDOW).is_ok());
    }
}
