//! The `preflight` binary: step selection, streaming, skip flags, the summary table and exit codes.
//! Each test runs one step (`--only`) so the suite never recurses into itself.

mod helpers;

use std::path::Path;

use helpers::{bin, run};

const BIN: &str = env!("CARGO_BIN_EXE_preflight");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The summary row of `step`: [step, status, seconds, note…].
fn summary_row<'a>(stdout: &'a str, step: &str) -> Vec<&'a str> {
    let summary = stdout
        .split("preflight summary\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    summary
        .lines()
        .find(|l| l.split_whitespace().next() == Some(step))
        .unwrap_or_else(|| panic!("no {step} row in summary:\n{summary}"))
        .split_whitespace()
        .collect()
}

fn last_line(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

#[test]
fn frontend_checks_the_console_script_and_both_steps_can_be_skipped() {
    let out = run(bin(BIN, Path::new(ROOT)).args(["--only", "frontend"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    let row = summary_row(&out.stdout, "frontend");
    assert_eq!(row[1], "pass");
    assert_eq!(
        row[3..].join(" "),
        "console.js parses; playwright-core pinned by e2e/package-lock.json"
    );
    assert!(out.stdout.contains("$ node --check"), "{}", out.all());
    // The e2e step itself (a browser) runs in `make test`; here only its skip is checked.
    for (step, flag) in [("frontend", "--skip-frontend"), ("e2e", "--skip-e2e")] {
        let out = run(bin(BIN, Path::new(ROOT)).args(["--only", step, flag]));
        assert_eq!(out.code, Some(0), "{step}: {}", out.all());
        assert_eq!(
            summary_row(&out.stdout, step),
            [step, "skipped", "0.0", flag]
        );
    }
}

#[test]
fn skipped_security_is_reported_and_does_not_fail() {
    let out = run(bin(BIN, Path::new(ROOT)).args(["--only", "security", "--skip-security"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        summary_row(&out.stdout, "security"),
        ["security", "skipped", "0.0", "--skip-security"]
    );
    assert_eq!(
        last_line(&out.stdout),
        "preflight: PASS (0 step(s) ran, all passed)"
    );
}

#[test]
fn skipped_coverage_is_reported_and_does_not_fail() {
    let out = run(bin(BIN, Path::new(ROOT)).args(["--only", "coverage", "--skip-coverage"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        summary_row(&out.stdout, "coverage"),
        ["coverage", "skipped", "0.0", "--skip-coverage"]
    );
}

#[test]
fn security_without_skip_fails_with_a_reason_when_it_cannot_run() {
    // Offline (or without cargo-deny) the security step must fail, never pass silently.
    let out = run(bin(BIN, Path::new(ROOT))
        .args(["--only", "security"])
        .env("CARGO_NET_OFFLINE", "true"));
    let row = summary_row(&out.stdout, "security");
    if row[1] == "pass" {
        // cargo-deny installed and its advisory database reachable: a real pass is fine.
        assert_eq!(out.code, Some(0));
        return;
    }
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert_eq!(row[1], "FAIL");
    let note = row[3..].join(" ");
    assert!(
        note.contains("cargo-deny is not installed")
            || note.contains("advisory database could not be fetched")
            || note.contains("exited with"),
        "{note}"
    );
}

#[test]
fn migrations_report_that_there_are_none_yet() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).args(["--only", "migrations"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        summary_row(&out.stdout, "migrations")[3..].join(" "),
        "no migrations in supabase/migrations yet"
    );
}

#[test]
fn migrations_without_the_check_script_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("supabase/migrations")).unwrap();
    std::fs::write(
        dir.path()
            .join("supabase/migrations/20260101000000_initial_schema.sql"),
        "create schema bp;\n",
    )
    .unwrap();
    let out = run(bin(BIN, dir.path()).args(["--only", "migrations"]));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        summary_row(&out.stdout, "migrations")[3..]
            .join(" ")
            .contains("1 migration(s) but scripts/check-migrations.sh is missing")
    );
}

#[test]
fn check_secrets_step_follows_the_environment_and_the_skip_flags() {
    let dir = tempfile::tempdir().unwrap();
    let failing = run(bin(BIN, dir.path())
        .args(["--only", "check-secrets"])
        .env("ENVIRONMENT", "production"));
    assert_eq!(failing.code, Some(1), "{}", failing.all());
    assert!(
        failing.stdout.contains("TWILIO_AUTH_TOKEN"),
        "streams the table"
    );
    assert_eq!(summary_row(&failing.stdout, "check-secrets")[1], "FAIL");
    assert_eq!(
        last_line(&failing.stdout),
        "preflight: FAIL (1 of 1 step(s) that ran failed: check-secrets)"
    );

    let passing = run(bin(BIN, dir.path())
        .args(["--only", "check-secrets", "--skip-vapi", "--skip-supabase"])
        .env("ENVIRONMENT", "production")
        .env("PUBLIC_BASE_URL", "https://gw.example.com")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"));
    assert_eq!(passing.code, Some(0), "{}", passing.all());
    assert_eq!(summary_row(&passing.stdout, "check-secrets")[1], "pass");

    let test_env = run(bin(BIN, dir.path())
        .args(["--only", "check_secrets"])
        .env("ENVIRONMENT", "test"));
    assert_eq!(test_env.code, Some(0), "{}", test_env.all());
}

fn scratch_crate(dir: &Path, lib: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"scratch\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
}

#[test]
fn fmt_step_streams_cargo_output_and_fails_on_unformatted_code() {
    let dir = tempfile::tempdir().unwrap();
    scratch_crate(dir.path(), "pub fn f( )->u8{1}\n");
    let out = run(bin(BIN, dir.path()).args(["--only", "fmt"]));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stdout.contains("==> [1/1] fmt"), "{}", out.stdout);
    assert!(
        out.stdout.contains("$ cargo fmt --all -- --check"),
        "{}",
        out.stdout
    );
    assert!(
        out.all().contains("pub fn f() -> u8"),
        "the diff is streamed"
    );
    assert_eq!(summary_row(&out.stdout, "fmt")[1], "FAIL");

    scratch_crate(dir.path(), "pub fn f() -> u8 {\n    1\n}\n");
    let out = run(bin(BIN, dir.path()).args(["--only", "fmt"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(summary_row(&out.stdout, "fmt")[1], "pass");
}

#[test]
fn workflows_step_validates_against_github_schema() {
    let out = run(bin(BIN, Path::new(ROOT)).args(["--only", "workflows"]));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        summary_row(&out.stdout, "workflows")[3..]
            .join(" ")
            .starts_with("1 file(s)"),
        "{}",
        out.stdout
    );

    // A stock machine: no user-installed Python or pip tools on PATH. The project-local .venv that
    // `make tools` creates is found anyway (from the checked root, or this source tree for a
    // scratch root).
    let stock = run(bin(BIN, Path::new(ROOT))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["--only", "workflows"]));
    assert_eq!(stock.code, Some(0), "{}", stock.all());

    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    // `runs-on` missing and a step with neither `run` nor `uses`.
    std::fs::write(
        workflows.join("broken.yml"),
        "on: push\njobs:\n  build:\n    steps:\n      - name: nothing\n",
    )
    .unwrap();
    let out = run(bin(BIN, dir.path()).args(["--only", "workflows"]));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert_eq!(summary_row(&out.stdout, "workflows")[1], "FAIL");

    let empty = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, empty.path()).args(["--only", "workflows"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.contains("no .github/workflows/*.yml to check"));
}

#[test]
fn an_unknown_step_is_a_usage_error() {
    let out = run(bin(BIN, Path::new(ROOT)).args(["--only", "lint"]));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains(
            "steps are: check-secrets, fmt, clippy, tests, coverage, migrations, workflows, security, frontend, e2e"
        ),
        "{}",
        out.stderr
    );
}
