use x509_parser::time::ASN1Time;

/// Renders unix seconds for error messages, e.g. `Nov 21 16:30:00 2026 +00:00`.
pub(crate) fn display(unix_seconds: i64) -> String {
    ASN1Time::from_timestamp(unix_seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{unix_seconds} (unix seconds)"))
}
