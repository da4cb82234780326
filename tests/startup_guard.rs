//! The `myriam` server binary: the runtime secrets guard per environment, a real start and stop,
//! and that planted secrets never reach stdout, stderr or the logs.

mod helpers;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use helpers::{PLANTED, assert_no_part_of, bin, production_env, run};

const BIN: &str = env!("CARGO_BIN_EXE_myriam");

#[test]
fn production_with_nothing_set_refuses_and_names_the_missing_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", "production"));
    assert_eq!(out.code, Some(1), "{}", out.all());
    for name in [
        "PUBLIC_BASE_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "VAPI_PRIVATE_KEY",
        "VAPI_ASSISTANT_ID",
        "VAPI_SERVER_SECRET",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
    ] {
        assert!(
            out.stderr.contains(&format!("  - {name}: missing")),
            "{name} not named:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("refusing to start in production"));
}

#[test]
fn unset_environment_fails_closed_like_production() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut bin(BIN, dir.path()));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("refusing to start in production"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_placeholder_is_named_as_a_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(production_env(&mut bin(BIN, dir.path())).env("TWILIO_AUTH_TOKEN", "changeme"));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stderr.contains("  - TWILIO_AUTH_TOKEN: placeholder"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("changeme"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("  - ").count(),
        1,
        "only the placeholder is a problem:\n{}",
        out.stderr
    );
}

#[test]
fn ivr_mode_with_sqlite_needs_neither_vapi_nor_supabase() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path())
        .env("ENVIRONMENT", "production")
        .env("CALL_MODE", "ivr")
        .env("STORE", "sqlite"));
    assert_eq!(out.code, Some(1));
    // The guard lists only the server and Twilio variables.
    assert!(
        out.stderr.contains("3 variable(s) not usable"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("PUBLIC_BASE_URL: missing"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("VAPI"), "{}", out.stderr);
    assert!(!out.stderr.contains("SUPABASE"), "{}", out.stderr);
}

#[test]
fn staging_is_refused_with_the_three_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(BIN, dir.path()).env("ENVIRONMENT", "staging"));
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr.trim(),
        "myriam: ENVIRONMENT has an unsupported value; allowed values: production, development, test"
    );
}

#[test]
fn malformed_values_the_server_must_interpret_fail_in_every_environment() {
    let dir = tempfile::tempdir().unwrap();
    for env in ["development", "test"] {
        let out = run(bin(BIN, dir.path())
            .env("ENVIRONMENT", env)
            .env("PORT", "eighty"));
        assert_eq!(out.code, Some(1), "{env}");
        assert_eq!(
            out.stderr.trim(),
            "myriam: PORT is malformed: expected a port number 0-65535"
        );
    }
}

/// A running server process whose output is collected line by line.
struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr_thread: std::thread::JoinHandle<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn myriam");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self {
            child,
            stdout: rx,
            stderr_thread,
            seen: Vec::new(),
        }
    }

    /// Waits for the JSON log line whose message is `message`.
    fn wait_for(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self
                .stdout
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!("no {message:?} log line; saw:\n{}", self.seen.join("\n"))
                });
            self.seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["fields"]["message"] == message {
                    return v;
                }
            }
        }
    }

    /// Sends SIGTERM, waits for exit, returns (exit code, stdout, stderr).
    fn terminate(mut self) -> (Option<i32>, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap().code();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (
            code,
            self.seen.join("\n"),
            self.stderr_thread.join().unwrap(),
        )
    }
}

#[test]
fn production_starts_serves_and_stops_on_sigterm_without_leaking_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        production_env(&mut bin(BIN, dir.path()))
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("PROMETHEUS_PORT", "0")
            .env("RUST_LOG", "debug"),
    );
    let started = server.wait_for("myriam listening");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["fields"]["environment"], "production");
    assert_eq!(started["fields"]["sentry"], true);
    let addr = started["fields"]["addr"].as_str().unwrap().to_owned();

    let (code, body) = http_get(&addr, "/healthz");
    assert_eq!(code, 200);
    assert!(body.contains(r#""status":"ok""#), "{body}");

    let (exit, stdout, stderr) = server.terminate();
    assert_eq!(exit, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("shutdown signal received"), "{stdout}");
    assert!(stdout.contains(r#""message":"stopped""#), "{stdout}");
    for (_, secret) in PLANTED {
        assert_no_part_of(secret, &stdout, "server stdout");
        assert_no_part_of(secret, &stderr, "server stderr");
    }
}

#[test]
fn a_failing_start_and_development_warnings_leak_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    // Production refusing: one malformed secret (echoing it would be the mistake), the rest planted.
    let refused = run(production_env(&mut bin(BIN, dir.path()))
        .env("TWILIO_AUTH_TOKEN", format!("{}-not-hex", PLANTED[0].1)));
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("TWILIO_AUTH_TOKEN: malformed (expected 32 hexadecimal characters)"),
        "{}",
        refused.stderr
    );
    // Development: malformed and placeholder secrets are warned about, by name.
    let mut dev = Server::start(
        production_env(&mut bin(BIN, dir.path()))
            .env("ENVIRONMENT", "development")
            .env("LOG_FORMAT", "json")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("VAPI_PRIVATE_KEY", format!("{}x", PLANTED[1].1))
            .env("VAPI_SERVER_SECRET", format!("your_{}", PLANTED[2].1)),
    );
    dev.wait_for("myriam listening");
    let (exit, stdout, stderr) = dev.terminate();
    assert_eq!(exit, Some(0));
    assert!(
        stdout.contains("VAPI_PRIVATE_KEY is malformed (expected a UUID (8-4-4-4-12 hexadecimal digits)); it is ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("VAPI_SERVER_SECRET holds a placeholder; it is ignored"),
        "{stdout}"
    );
    for (_, secret) in PLANTED {
        for text in [&refused.stdout, &refused.stderr, &stdout, &stderr] {
            assert_no_part_of(secret, text, "server output");
        }
    }
}

/// A minimal HTTP/1.1 GET over a std socket (keeps this test free of an async runtime).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}
