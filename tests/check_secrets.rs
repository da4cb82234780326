//! The `check_secrets` binary: table rows, verdicts, exit codes, `--json`, skip flags, env files,
//! and that no value ever reaches its output.

mod helpers;

use std::fmt::Write as _;

use helpers::{PLANTED, assert_no_part_of, bin, production_env, run};
use myriam::secrets::CATALOGUE;

const BIN: &str = env!("CARGO_BIN_EXE_check_secrets");

fn row<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn production_with_nothing_set_fails_and_names_every_required_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", "production"));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stdout
            .starts_with("check_secrets — environment: production\n")
    );
    assert_eq!(
        row(&out.stdout, "TWILIO_AUTH_TOKEN"),
        [
            "TWILIO_AUTH_TOKEN",
            "twilio",
            "required",
            "missing",
            "secret"
        ]
    );
    assert_eq!(
        row(&out.stdout, "BIND_ADDR"),
        [
            "BIND_ADDR",
            "server",
            "optional",
            "missing",
            "default",
            "127.0.0.1:8080"
        ]
    );
    for spec in CATALOGUE {
        row(&out.stdout, spec.name);
    }
    let verdict = out.stdout.lines().last().unwrap();
    assert_eq!(
        verdict,
        "verdict: FAIL — 8 variable(s) not usable for production: PUBLIC_BASE_URL (missing), \
         TWILIO_ACCOUNT_SID (missing), TWILIO_AUTH_TOKEN (missing), VAPI_PRIVATE_KEY (missing), \
         VAPI_ASSISTANT_ID (missing), VAPI_SERVER_SECRET (missing), SUPABASE_URL (missing), \
         SUPABASE_SERVICE_ROLE_KEY (missing)"
    );
}

#[test]
fn unset_environment_is_judged_as_production() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut bin(BIN, dir.path()));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.contains("environment: production"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_complete_production_environment_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(production_env(&mut bin(BIN, dir.path())));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: OK")
    );
    assert_eq!(
        row(&out.stdout, "SUPABASE_SERVICE_ROLE_KEY")[..4],
        [
            "SUPABASE_SERVICE_ROLE_KEY",
            "supabase",
            "required",
            "present"
        ]
    );
}

#[test]
fn skip_flags_make_their_group_optional() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path())
        .args(["--skip-vapi", "--skip-supabase"])
        .env("ENVIRONMENT", "production")
        .env("PUBLIC_BASE_URL", "https://gw.example.com")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("(optional groups: vapi, supabase)"));
    assert_eq!(row(&out.stdout, "VAPI_PRIVATE_KEY")[2], "optional");
    assert_eq!(row(&out.stdout, "SUPABASE_URL")[2], "optional");

    let only_vapi = run(bin(BIN, dir.path())
        .args(["--skip-vapi"])
        .env("ENVIRONMENT", "production")
        .env("PUBLIC_BASE_URL", "https://gw.example.com")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"));
    assert_eq!(only_vapi.code, Some(1));
    let verdict = only_vapi.stdout.lines().last().unwrap();
    assert!(verdict.contains("SUPABASE_URL (missing)"), "{verdict}");
    assert!(!verdict.contains("VAPI"), "{verdict}");
}

#[test]
fn json_output_has_a_stable_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path())
        .args(["--json", "--skip-supabase"])
        .env("ENVIRONMENT", "production")
        .env("TWILIO_ACCOUNT_SID", "ACnot-hex")
        .env("VAPI_SERVER_SECRET", "your_vapi_secret"));
    assert_eq!(out.code, Some(1), "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(v["environment"], "production");
    assert_eq!(v["ok"], false);
    assert_eq!(v["skipped_groups"], serde_json::json!(["supabase"]));
    let vars = v["variables"].as_array().unwrap();
    assert_eq!(vars.len(), CATALOGUE.len());
    let sid = vars
        .iter()
        .find(|x| x["name"] == "TWILIO_ACCOUNT_SID")
        .unwrap();
    assert_eq!(
        sid,
        &serde_json::json!({
            "name": "TWILIO_ACCOUNT_SID", "group": "twilio", "required": true, "secret": false,
            "status": "malformed", "detail": "expected AC followed by 32 hexadecimal characters"
        })
    );
    let secret = vars
        .iter()
        .find(|x| x["name"] == "VAPI_SERVER_SECRET")
        .unwrap();
    assert_eq!(secret["status"], "placeholder");
    assert_eq!(
        v["failing"],
        serde_json::json!([
            "PUBLIC_BASE_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "VAPI_PRIVATE_KEY",
            "VAPI_ASSISTANT_ID",
            "VAPI_SERVER_SECRET"
        ])
    );
    assert_eq!(v["summary"]["malformed"], 1);
    assert_eq!(v["summary"]["placeholder"], 1);
    assert!(!out.stdout.contains("your_vapi_secret"));
}

#[test]
fn env_example_values_are_all_flagged_as_placeholders() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example");
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).args([
        "--json",
        "--environment",
        "production",
        "--env-file",
        example,
    ]));
    assert_eq!(out.code, Some(1), "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let assigned: Vec<String> = std::fs::read_to_string(example)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().trim().to_owned())
        .collect();
    assert!(assigned.len() >= 8, "{assigned:?}");
    for var in v["variables"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        if assigned.iter().any(|a| a == name) {
            assert_eq!(var["status"], "placeholder", "{name} in .env.example");
        } else {
            assert_eq!(var["status"], "missing", "{name} should be commented out");
        }
    }
}

#[test]
fn the_real_environment_wins_over_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.env");
    std::fs::write(
        &file,
        "ENVIRONMENT=production\nTWILIO_AUTH_TOKEN=changeme\nPUBLIC_BASE_URL=https://gw.example.com\n",
    )
    .unwrap();
    let out = run(bin(BIN, dir.path())
        .args(["--env-file", file.to_str().unwrap()])
        .env("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"));
    assert_eq!(row(&out.stdout, "TWILIO_AUTH_TOKEN")[3], "present");
    assert_eq!(row(&out.stdout, "PUBLIC_BASE_URL")[3], "present");

    // A `.env` in the working directory is read by default.
    std::fs::write(dir.path().join(".env"), "TWILIO_AUTH_TOKEN=your_token\n").unwrap();
    let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", "production"));
    assert_eq!(row(&out.stdout, "TWILIO_AUTH_TOKEN")[3], "placeholder");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--environment", "staging"],
        vec!["--bogus"],
        vec!["--env-file", "/nonexistent/deploy.env"],
    ] {
        let out = run(bin(BIN, dir.path()).args(&args));
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.all());
    }
    let out = run(bin(BIN, dir.path()).args(["--env-file", "/nonexistent/deploy.env"]));
    assert!(
        out.stderr.contains("/nonexistent/deploy.env"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_environment_names_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", "staging"));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("allowed values: production, development, test"),
        "{}",
        out.stderr
    );
}

#[test]
fn development_and_test_require_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for env in ["development", "test"] {
        let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", env));
        assert_eq!(out.code, Some(0), "{env}: {}", out.all());
        assert_eq!(row(&out.stdout, "TWILIO_AUTH_TOKEN")[2], "optional");
    }
}

#[test]
fn no_secret_value_or_part_of_one_is_ever_printed() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("secrets.env");
    // Well-formed secrets, then the same secrets made malformed (a value that fails its shape check
    // is the most tempting to echo).
    let mut malformed = String::new();
    for (name, value) in PLANTED {
        writeln!(malformed, "{name}={value}!").unwrap();
    }
    std::fs::write(&env_file, malformed).unwrap();
    let runs = [
        run(production_env(&mut bin(BIN, dir.path()))),
        run(production_env(&mut bin(BIN, dir.path())).arg("--json")),
        run(bin(BIN, dir.path())
            .args(["--environment", "production", "--env-file"])
            .arg(&env_file)),
        run(bin(BIN, dir.path())
            .args(["--json", "--environment", "production", "--env-file"])
            .arg(&env_file)),
    ];
    assert!(runs[2].stdout.contains("malformed"), "{}", runs[2].stdout);
    for out in &runs {
        for (_, value) in PLANTED {
            assert_no_part_of(value, &out.all(), "check_secrets output");
        }
    }
}
