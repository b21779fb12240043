//! Go-style durations (`2s`, `100ms`, `1m30s`), as Fabric writes BatchTimeout.

use std::time::Duration;

/// Parses a Go duration string: one or more `<number><unit>` terms, units
/// `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; decimals allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {text:?} lacks a unit (ns, us, ms, s, m, h)"))?;
        if number_end == 0 {
            return Err(format!("duration {text:?}: expected a number at {rest:?}"));
        }
        let number: f64 = rest[..number_end]
            .parse()
            .map_err(|_| format!("duration {text:?}: bad number {:?}", &rest[..number_end]))?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("duration {text:?}: unknown unit {unit:?}")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("duration {text:?}: {e}"))
}

/// Formats a duration the way Go prints simple ones: `2s`, `100ms`, `1500us`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        "0s".into()
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let cases = [
            ("2s", Duration::from_secs(2)),
            ("100ms", Duration::from_millis(100)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
            if !expected.is_zero() {
                assert_eq!(parse_duration(&format_duration(expected)), Ok(expected));
            }
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, fragment) in [
            ("", "empty"),
            ("10", "lacks a unit"),
            ("5 parsecs", "unknown unit"),
            ("s", "expected a number"),
            ("1.2.3s", "bad number"),
        ] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }
}
