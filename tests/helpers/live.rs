//! Live tests against hosted services: when they run, and how a skip is reported.
//!
//! A live test runs only when its credentials are present and its flag (`BP_SKIP_VAPI_TESTS`,
//! `BP_SKIP_SUPABASE_TESTS`) is not `1`. Otherwise it returns early and writes one line
//! `SKIPPED <test>: <reason>` straight to the process's stderr (not through the test harness's
//! capture, so it shows in every `cargo test` run); `scripts/test.sh` counts those lines in its
//! summary. Reasons name variables, never values.

use std::io::Write as _;

/// The environment variable `name`, trimmed, when set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Why `test` cannot run, if it cannot: the skip flag, then each missing variable (names only).
pub fn skip_reason(flag: &str, required: &[&str]) -> Option<String> {
    if var(flag).as_deref() == Some("1") {
        return Some(format!("{flag}=1"));
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| var(name).is_none())
        .collect();
    (!missing.is_empty()).then(|| format!("not set: {}", missing.join(", ")))
}

/// Reports a skipped live test on stderr, bypassing the harness's output capture.
pub fn report_skip(test: &str, reason: &str) {
    // One write, so the line is never split by the harness's own output on the same stream (it
    // may still follow a `test … ` prefix on the same line; scripts/test.sh does not anchor).
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `Some(values)` of `required` when `test` should run; `None` (and the skip reported) otherwise.
pub fn credentials(test: &str, flag: &str, required: &[&str]) -> Option<Vec<String>> {
    if let Some(reason) = skip_reason(flag, required) {
        report_skip(test, &reason);
        return None;
    }
    Some(required.iter().filter_map(|name| var(name)).collect())
}
