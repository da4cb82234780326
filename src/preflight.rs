//! The steps behind the `preflight` binary: everything CI checks, runnable on a workstation.
//!
//! Steps run in order, each streaming its output; a summary table (step, status, seconds) ends the
//! run. Only steps that ran and failed make the run fail: skipped steps say why they were skipped.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::secrets::{EnvSource, Group, Report, Skips};

/// Every step, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CheckSecrets,
    Fmt,
    Clippy,
    Tests,
    Coverage,
    Migrations,
    Workflows,
    Security,
    Frontend,
    E2e,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::CheckSecrets,
        Step::Fmt,
        Step::Clippy,
        Step::Tests,
        Step::Coverage,
        Step::Migrations,
        Step::Workflows,
        Step::Security,
        Step::Frontend,
        Step::E2e,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::CheckSecrets => "check-secrets",
            Step::Fmt => "fmt",
            Step::Clippy => "clippy",
            Step::Tests => "tests",
            Step::Coverage => "coverage",
            Step::Migrations => "migrations",
            Step::Workflows => "workflows",
            Step::Security => "security",
            Step::Frontend => "frontend",
            Step::E2e => "e2e",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown step; steps are: {}", Step::ALL.map(Step::name).join(", "))]
pub struct UnknownStep;

impl FromStr for Step {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == s || step.name().replace('-', "_") == s)
            .ok_or(UnknownStep)
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub skip_frontend: bool,
    pub skip_e2e: bool,
    pub skip_security: bool,
    pub skip_coverage: bool,
    pub skip_vapi: bool,
    pub skip_supabase: bool,
    pub only: Option<Step>,
    /// The project root (where `Cargo.toml` is).
    pub root: PathBuf,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(Option<String>),
    Fail(String),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skipped(_) => "skipped",
        }
    }

    fn note(&self) -> &str {
        match self {
            Outcome::Pass(note) => note.as_deref().unwrap_or(""),
            Outcome::Fail(note) | Outcome::Skipped(note) => note,
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub step: Step,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Runs the selected steps in order and returns their results.
pub fn run(options: &Options) -> Vec<StepResult> {
    let steps: Vec<Step> = match options.only {
        Some(step) => vec![step],
        None => Step::ALL.to_vec(),
    };
    let total = steps.len();
    let mut results = Vec::with_capacity(total);
    for (i, step) in steps.into_iter().enumerate() {
        println!("\n==> [{}/{}] {}", i + 1, total, step);
        let started = Instant::now();
        let outcome = run_step(step, options);
        let elapsed = started.elapsed();
        println!(
            "<== {}: {}{}",
            step,
            outcome.label(),
            match outcome.note() {
                "" => String::new(),
                note => format!(" — {note}"),
            }
        );
        results.push(StepResult {
            step,
            outcome,
            elapsed,
        });
    }
    results
}

/// True when every step that ran passed.
pub fn all_passed(results: &[StepResult]) -> bool {
    !results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Fail(_)))
}

/// The closing table and verdict line.
pub fn summary(results: &[StepResult]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\npreflight summary\n");
    let _ = writeln!(out, "{:<14} {:<8} {:>8}  NOTE", "STEP", "STATUS", "SECONDS");
    for r in results {
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:>8.1}  {}",
            r.step.name(),
            r.outcome.label(),
            r.elapsed.as_secs_f64(),
            r.outcome.note()
        );
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .map(|r| r.step.name())
        .collect();
    let ran = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Skipped(_)))
        .count();
    if failed.is_empty() {
        let _ = writeln!(out, "preflight: PASS ({ran} step(s) ran, all passed)");
    } else {
        let _ = writeln!(
            out,
            "preflight: FAIL ({} of {ran} step(s) that ran failed: {})",
            failed.len(),
            failed.join(", ")
        );
    }
    out
}

fn run_step(step: Step, o: &Options) -> Outcome {
    match step {
        Step::CheckSecrets => check_secrets(o),
        Step::Fmt => command_outcome(cargo(o, &["fmt", "--all", "--", "--check"]), None),
        Step::Clippy => command_outcome(
            cargo(o, &["clippy", "--all-targets", "--", "-D", "warnings"]),
            None,
        ),
        Step::Tests => {
            let mut cmd = Command::new("make");
            cmd.args(["--no-print-directory", "test"])
                .current_dir(&o.root);
            if o.skip_vapi {
                cmd.env("BP_SKIP_VAPI_TESTS", "1");
            }
            if o.skip_supabase {
                cmd.env("BP_SKIP_SUPABASE_TESTS", "1");
            }
            command_outcome(cmd, None)
        }
        Step::Coverage => coverage(o),
        Step::Migrations => migrations(o),
        Step::Workflows => workflows(o),
        Step::Security => security(o),
        Step::Frontend => frontend(o),
        Step::E2e => e2e(o),
    }
}

fn cargo(o: &Options, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(&o.root);
    cmd
}

fn check_secrets(o: &Options) -> Outcome {
    let source = match EnvSource::load(&o.root.join(".env"), false) {
        Ok(source) => source,
        Err(error) => return Outcome::Fail(error.to_string()),
    };
    let environment = match Environment::from_value(source.get("ENVIRONMENT")) {
        Ok(env) => env,
        Err(error) => return Outcome::Fail(error.to_string()),
    };
    let mut skips = Skips::implied_by(&source);
    if o.skip_vapi {
        skips = skips.with(Group::Vapi);
    }
    if o.skip_supabase {
        skips = skips.with(Group::Supabase);
    }
    let report = Report::new(&source, environment, &skips);
    print!("{}", report.table());
    println!("{}", report.verdict());
    if report.is_ok() {
        Outcome::Pass(Some(format!("environment {environment}")))
    } else {
        Outcome::Fail(format!(
            "{} variable(s) not usable for {environment}",
            report.failures().count()
        ))
    }
}

/// The line coverage of `src/` must stay at or above this (`make coverage`, cargo-tarpaulin).
pub const COVERAGE_FLOOR: &str = "90";

fn coverage(o: &Options) -> Outcome {
    if o.skip_coverage {
        return Outcome::Skipped("--skip-coverage".to_owned());
    }
    let mut cmd = Command::new("bash");
    cmd.arg(o.root.join("scripts/coverage.sh"))
        .args(["--fail-under", COVERAGE_FLOOR])
        .current_dir(&o.root);
    if o.skip_vapi {
        cmd.env("BP_SKIP_VAPI_TESTS", "1");
    }
    if o.skip_supabase {
        cmd.env("BP_SKIP_SUPABASE_TESTS", "1");
    }
    command_outcome(
        cmd,
        Some(format!("at least {COVERAGE_FLOOR} % of src/ lines")),
    )
}

fn migrations(o: &Options) -> Outcome {
    let dir = o.root.join("supabase/migrations");
    let count = sql_files(&dir).len();
    if count == 0 {
        return Outcome::Skipped("no migrations in supabase/migrations yet".to_owned());
    }
    let script = o.root.join("scripts/check-migrations.sh");
    if !script.exists() {
        return Outcome::Fail(format!(
            "{count} migration(s) but scripts/check-migrations.sh is missing"
        ));
    }
    let mut cmd = Command::new("bash");
    cmd.arg(script).current_dir(&o.root);
    command_outcome(cmd, Some(format!("{count} migration(s) applied")))
}

fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn workflow_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(".github/workflows"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// True when `program --version` runs.
fn available(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `check-jsonschema` from the project-local virtual environment that `scripts/install-tools.sh`
/// creates (`.venv/`): the checked root's first, then this source tree's (a scratch root in a
/// temporary directory has none). System pip is "externally managed" on Debian and Ubuntu, so this
/// is where `make tools` installs it.
fn venv_check_jsonschema(root: &Path) -> Option<PathBuf> {
    [root, Path::new(env!("CARGO_MANIFEST_DIR"))]
        .iter()
        .map(|dir| dir.join(".venv/bin/check-jsonschema"))
        .find(|path| available(path, &["--version"]))
}

fn workflows(o: &Options) -> Outcome {
    let files = workflow_files(&o.root);
    if files.is_empty() {
        return Outcome::Fail("no .github/workflows/*.yml to check".to_owned());
    }
    let mut cmd = if let Some(venv) = venv_check_jsonschema(&o.root) {
        Command::new(venv)
    } else if available("check-jsonschema", &["--version"]) {
        Command::new("check-jsonschema")
    } else if available("python3", &["-m", "check_jsonschema", "--version"]) {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "check_jsonschema"]);
        cmd
    } else {
        return Outcome::Fail(
            "check-jsonschema is not installed (`make tools` puts it in .venv/)".to_owned(),
        );
    };
    cmd.args(["--builtin-schema", "vendor.github-workflows"])
        .args(&files)
        .current_dir(&o.root);
    let schema = command_outcome(cmd, None);
    if schema != Outcome::Pass(None) {
        return schema;
    }
    if available("actionlint", &["-version"]) {
        let mut cmd = Command::new("actionlint");
        cmd.args(&files).current_dir(&o.root);
        command_outcome(
            cmd,
            Some(format!(
                "{} file(s): schema and actionlint passed",
                files.len()
            )),
        )
    } else {
        Outcome::Pass(Some(format!(
            "{} file(s) match the schema; actionlint not installed (optional)",
            files.len()
        )))
    }
}

fn security(o: &Options) -> Outcome {
    if o.skip_security {
        return Outcome::Skipped("--skip-security".to_owned());
    }
    if !available("cargo", &["deny", "--version"]) {
        return Outcome::Fail(
            "cargo-deny is not installed (cargo install --locked cargo-deny), or pass --skip-security"
                .to_owned(),
        );
    }
    let (outcome, output) = run_streaming(cargo(o, &["deny", "check"]));
    match outcome {
        Outcome::Fail(_) if mentions_advisory_fetch_failure(&output) => Outcome::Fail(
            "the advisory database could not be fetched (no network?); pass --skip-security offline"
                .to_owned(),
        ),
        other => other,
    }
}

fn mentions_advisory_fetch_failure(output: &str) -> bool {
    let lower = output.to_ascii_lowercase();
    lower.contains("advisory")
        && ["fetch", "network", "resolve", "connect", "clone"]
            .iter()
            .any(|w| lower.contains(w))
}

/// The console's browser side: its one script parses (`node --check`) and the end-to-end test's
/// browser driver is pinned (`e2e/package-lock.json`). The pages are server-rendered by the gateway.
fn frontend(o: &Options) -> Outcome {
    let script = o.root.join("src/console/console.js");
    if !script.exists() {
        return Outcome::Pass(Some("no frontend in this repository".to_owned()));
    }
    if o.skip_frontend {
        return Outcome::Skipped("--skip-frontend".to_owned());
    }
    if !o.root.join("e2e/package-lock.json").exists() {
        return Outcome::Fail(
            "e2e/package-lock.json is missing: playwright-core must be pinned".to_owned(),
        );
    }
    let mut cmd = Command::new("node");
    cmd.arg("--check").arg(&script).current_dir(&o.root);
    command_outcome(
        cmd,
        Some("console.js parses; playwright-core pinned by e2e/package-lock.json".to_owned()),
    )
}

/// The console end to end in Debian's Chromium driven by Playwright (`scripts/e2e.sh`).
fn e2e(o: &Options) -> Outcome {
    let script = o.root.join("scripts/e2e.sh");
    if !script.exists() {
        return Outcome::Pass(Some("no frontend in this repository".to_owned()));
    }
    if o.skip_e2e {
        return Outcome::Skipped("--skip-e2e".to_owned());
    }
    let mut cmd = Command::new("bash");
    cmd.arg(script).current_dir(&o.root);
    command_outcome(
        cmd,
        Some("the console in Chromium (Playwright); screenshots in target/e2e".to_owned()),
    )
}

fn command_outcome(cmd: Command, pass_note: Option<String>) -> Outcome {
    match run_streaming(cmd).0 {
        Outcome::Pass(_) => Outcome::Pass(pass_note),
        other => other,
    }
}

/// Runs `cmd`, streaming its stdout and stderr as they come, and keeps a copy for diagnosis.
fn run_streaming(mut cmd: Command) -> (Outcome, String) {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map_or_else(
            || cmd.get_program().to_string_lossy(),
            |n| n.to_string_lossy(),
        )
        .into_owned();
    println!(
        "$ {} {}",
        program,
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(error) => {
            return (
                Outcome::Fail(format!("cannot run {program}: {error}")),
                String::new(),
            );
        }
    };
    let stdout = child.stdout.take().map(|s| relay(s, false));
    let stderr = child.stderr.take().map(|s| relay(s, true));
    let mut captured = String::new();
    for handle in [stdout, stderr].into_iter().flatten() {
        captured.push_str(&handle.join().unwrap_or_default());
    }
    let outcome = match child.wait() {
        Ok(status) if status.success() => Outcome::Pass(None),
        Ok(status) => Outcome::Fail(format!("{program} exited with {status}")),
        Err(error) => Outcome::Fail(format!("waiting for {program}: {error}")),
    };
    (outcome, captured)
}

fn relay<R: Read + Send + 'static>(stream: R, to_stderr: bool) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut captured = String::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            captured.push_str(&line);
            captured.push('\n');
        }
        captured
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_parse_back() {
        for step in Step::ALL {
            assert_eq!(step.name().parse::<Step>(), Ok(step));
        }
        assert_eq!("check_secrets".parse::<Step>(), Ok(Step::CheckSecrets));
        assert!("lint".parse::<Step>().is_err());
    }

    #[test]
    fn summary_names_failed_steps_and_skips_do_not_fail() {
        let results = vec![
            StepResult {
                step: Step::Fmt,
                outcome: Outcome::Fail("cargo exited with exit status: 1".into()),
                elapsed: Duration::from_millis(1500),
            },
            StepResult {
                step: Step::Security,
                outcome: Outcome::Skipped("--skip-security".into()),
                elapsed: Duration::ZERO,
            },
        ];
        let text = summary(&results);
        assert!(text.contains("fmt            FAIL          1.5"), "{text}");
        assert!(
            text.contains("security       skipped       0.0  --skip-security"),
            "{text}"
        );
        assert!(
            text.contains("preflight: FAIL (1 of 1 step(s) that ran failed: fmt)"),
            "{text}"
        );
        assert!(!all_passed(&results));
        assert!(all_passed(&results[1..]));
    }

    #[test]
    fn advisory_fetch_failures_are_recognised() {
        assert!(mentions_advisory_fetch_failure(
            "error: failed to fetch advisory database: network unreachable"
        ));
        assert!(!mentions_advisory_fetch_failure(
            "error: license not allowed"
        ));
    }
}
