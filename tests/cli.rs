//! The developer subcommands through the built binary: `myriam verify-signature` (exit codes, what
//! it prints, never the token) and `myriam simulate` against a real gateway process.

mod helpers;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use helpers::{assert_no_part_of, bin, run};

const BIN: &str = env!("CARGO_BIN_EXE_myriam");
const TOKEN: &str = "5eed5eed5eed5eed5eed5eed5eed5eed";

fn verify(dir: &std::path::Path, args: &[&str]) -> helpers::Run {
    run(bin(BIN, dir)
        .arg("verify-signature")
        .args(args)
        .env("TWILIO_AUTH_TOKEN", "12345"))
}

const DOC_ARGS: &[&str] = &[
    "--url",
    "https://mycompany.com/myapp.php?foo=1&bar=2",
    "--param",
    "CallSid=CA1234567890ABCDE",
    "--param",
    "Caller=+14158675310",
    "--param",
    "Digits=1234",
    "--param",
    "From=+14158675310",
    "--param",
    "To=+18005551212",
];

#[test]
fn verify_signature_accepts_twilio_s_documented_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = DOC_ARGS.to_vec();
    args.extend(["--signature", "GvWf1cFY/Q7PnoempGyD5oXAezc="]);
    let out = verify(dir.path(), &args);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        out.stdout,
        "valid: the signature matches the URL as received (https://mycompany.com/myapp.php?foo=1&bar=2)\n"
    );
}

#[test]
fn verify_signature_explains_a_mismatch_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = DOC_ARGS.to_vec();
    args.extend(["--signature", "bm90IHRoZSBzaWduYXR1cmU="]);
    let out = run(bin(BIN, dir.path())
        .arg("verify-signature")
        .args(&args)
        .env("TWILIO_AUTH_TOKEN", TOKEN));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stdout
            .starts_with("invalid: X-Twilio-Signature does not match\n")
    );
    assert!(
        out.stdout
            .contains("    url:           https://mycompany.com:443/myapp.php?foo=1&bar=2\n")
    );
    assert!(
        out.stdout
            .contains("Digits1234From+14158675310To+18005551212\n")
    );
    assert_no_part_of(TOKEN, &out.all(), "verify-signature output");
}

#[test]
fn verify_signature_form_and_json_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let form = run(bin(BIN, dir.path())
        .args([
            "verify-signature",
            "--url",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "--form-body",
            "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212",
            "--signature",
            "GvWf1cFY/Q7PnoempGyD5oXAezc=",
        ])
        .env("TWILIO_AUTH_TOKEN", "12345"));
    assert_eq!(form.code, Some(0), "{}", form.all());

    let body = dir.path().join("body.json");
    std::fs::write(&body, br#"{"CallSid":"CA1"}"#).unwrap();
    let hash = myriam::twilio::signature::body_sha256(br#"{"CallSid":"CA1"}"#);
    let url = format!("https://h/events?bodySHA256={hash}");
    let sig = myriam::twilio::signature::sign("12345", &url);
    let json = verify(
        dir.path(),
        &[
            "--url",
            &url,
            "--json-body-file",
            body.to_str().unwrap(),
            "--signature",
            &sig,
        ],
    );
    assert_eq!(json.code, Some(0), "{}", json.all());
}

#[test]
fn verify_signature_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let no_token = run(bin(BIN, dir.path()).args([
        "verify-signature",
        "--url",
        "https://h/",
        "--signature",
        "x",
    ]));
    assert_eq!(no_token.code, Some(2));
    assert_eq!(no_token.stderr, "myriam: TWILIO_AUTH_TOKEN is not set\n");
    for args in [
        vec![
            "--url",
            "https://h/",
            "--signature",
            "x",
            "--param",
            "novalue",
        ],
        vec![
            "--url",
            "https://h/",
            "--signature",
            "x",
            "--param",
            "A=1",
            "--form-body",
            "A=1",
        ],
        vec!["--signature", "x"],
        vec![
            "--url",
            "https://h/",
            "--signature",
            "x",
            "--json-body-file",
            "/nonexistent",
        ],
    ] {
        let out = verify(dir.path(), &args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.all());
    }
}

/// `myriam serve` in development on the SQLite file `db`, with `env` on top; the process and
/// its base URL.
fn dev_gateway(
    dir: &std::path::Path,
    db: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let mut command = bin(BIN, dir);
    command
        .arg("serve")
        .env("ENVIRONMENT", "development")
        .env("STORE", "sqlite")
        .env("DATABASE_PATH", db)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut server = command.spawn().unwrap();
    let mut addr = None;
    for line in BufReader::new(server.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "myriam listening" {
            addr = v["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("gateway started");
    (server, format!("http://{addr}"))
}

#[test]
fn simulate_plays_a_whole_call_against_a_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    let (mut server, base) = dev_gateway(dir.path(), &db, &[]);
    let answers = dir.path().join("answers.txt");
    std::fs::write(
        &answers,
        "Gaétan Lévesque\n\nnon\n418 555 0142\n12 rue des Érables, Québec G1R 2B5\nune souche à enlever\nvieille souche d'érable\npas pressé\n",
    )
    .unwrap();
    let out = run(Command::new(BIN)
        .current_dir(dir.path())
        .args(["simulate", "--base-url", &base, "--answers"])
        .arg(&answers)
        .args(["--database"])
        .arg(&db)
        .env("TWILIO_AUTH_TOKEN", TOKEN));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("(signed with TWILIO_AUTH_TOKEN)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Caller: (silence)\nMyriam: Je n'ai rien entendu."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Caller: non\nMyriam: D'accord. À quel numéro"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("stored lead (sqlite store):"),
        "{}",
        out.stdout
    );
    let json = &out.stdout[out.stdout.find("{\n").unwrap()..];
    let lead: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(lead["status"], "qualifie");
    assert_eq!(lead["telephone"], "+14185550142");
    assert_eq!(
        lead["adresse_complete"],
        "12 rue des Érables, Québec G1R 2B5"
    );
    assert_eq!(lead["type_service"], "essouchement");
    assert_eq!(lead["urgence"], false);
    assert_no_part_of(TOKEN, &out.all(), "simulate output");
}

/// A caller who gives a name and asks for a person, played by `simulate` with `extra` arguments
/// against a development gateway with a transfer line, open all week: its output and stored lead.
fn handed_to_people(extra: &[&str]) -> (helpers::Run, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    let (mut server, base) = dev_gateway(
        dir.path(),
        &db,
        &[
            ("TRANSFER_NUMBER", "+14505550100"),
            ("BUSINESS_HOURS", "mon-sun 00:00-24:00"),
        ],
    );
    let answers = dir.path().join("answers.txt");
    std::fs::write(&answers, "Gaétan Lévesque\nje veux parler à quelqu'un\n").unwrap();
    let out = run(Command::new(BIN)
        .current_dir(dir.path())
        .args(["simulate", "--base-url", &base])
        .args(extra)
        .arg("--answers")
        .arg(&answers)
        .args(["--database"])
        .arg(&db)
        .env("TWILIO_AUTH_TOKEN", TOKEN));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.code, Some(0), "{}", out.all());
    let json = &out.stdout[out.stdout.find("{\n").unwrap()..];
    let lead = serde_json::from_str(json).unwrap();
    (out, lead)
}

#[test]
fn simulate_plays_a_caller_handed_to_people() {
    let (out, lead) = handed_to_people(&[]);
    let expected = "Caller: je veux parler à quelqu'un\n\
         Myriam: Un instant, je vous transfère à un membre de l'équipe.\n\
         (Twilio rings the office line; nobody answers within the ring time)\n\
         Myriam: Désolée, personne de l'équipe n'a pu répondre.";
    assert!(out.stdout.contains(expected), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "(beep: the caller leaves a 12-second message, then hangs up)\n\
             Myriam: Merci, votre demande est notée. Bonne journée!"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(lead["status"], "rappel");
    assert_eq!(lead["nom_complet"], "Gaétan Lévesque");
    assert_eq!(
        lead["telephone"], "+15145550199",
        "the caller ID to call back"
    );
}

#[test]
fn simulate_plays_a_transfer_someone_answers() {
    let (out, lead) = handed_to_people(&["--dial-status", "completed"]);
    assert!(
        out.stdout.contains(
            "(Twilio rings the office line; someone answers and talks with the caller for a minute)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("(beep:"),
        "no voicemail: {}",
        out.stdout
    );
    assert_eq!(lead["status"], "transfere");
    assert_eq!(lead["nom_complet"], "Gaétan Lévesque");
}

/// Starts the gateway the way `make run` does (`ENVIRONMENT=development myriam serve`, nothing else
/// configured, run from `dir`), on a free port; returns the process and its address.
fn make_run_gateway(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut server = bin(BIN, dir)
        .arg("serve")
        .env("ENVIRONMENT", "development")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut addr = None;
    let mut log = String::new();
    for line in BufReader::new(server.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "myriam listening" {
            addr = v["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("gateway did not start:\n{log}"));
    assert!(
        log.contains("dev-twilio-auth-token"),
        "the log names the development key's file:\n{log}"
    );
    let key = std::fs::read_to_string(dir.join("data/dev-twilio-auth-token")).unwrap();
    assert_no_part_of(key.trim(), &log, "gateway log");
    (server, addr)
}

/// A raw, unsigned form POST; the whole response.
fn post_unsigned(addr: &str, path: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn make_run_then_the_documented_simulate_takes_a_whole_signed_call() {
    let dir = tempfile::tempdir().unwrap();
    // A newcomer who copied .env.example: its placeholder token is ignored by both sides.
    std::fs::write(
        dir.path().join(".env"),
        "TWILIO_AUTH_TOKEN=your_twilio_auth_token\n",
    )
    .unwrap();
    let (mut server, addr) = make_run_gateway(dir.path());
    let base = format!("http://{addr}");
    // Signatures are still checked in development: an unsigned webhook is refused.
    let unsigned = post_unsigned(
        &addr,
        "/twilio/voice",
        "CallSid=CA00000000000000000000000000000001",
    );
    // The documented command (README, "On a fresh machine"), from the same directory, no variables.
    let out = run(bin(BIN, dir.path()).args(["simulate", "--base-url", &base]));
    let _ = server.kill();
    let _ = server.wait();
    assert!(unsigned.starts_with("HTTP/1.1 401"), "{unsigned}");
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.contains(&format!(
            "(signed with the development key in {})",
            std::path::Path::new("data")
                .join("dev-twilio-auth-token")
                .display()
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Caller: oui c'est urgent\nMyriam: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("stored lead (sqlite store):"),
        "{}",
        out.stdout
    );
    let json = &out.stdout[out.stdout.find("{\n").unwrap()..];
    let lead: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(lead["status"], "qualifie", "{json}");
    assert_eq!(lead["telephone"], "+15145550199", "{json}");
    assert_eq!(
        lead["adresse_complete"], "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
        "{json}"
    );
    assert_eq!(lead["urgence"], true, "{json}");
    let key = std::fs::read_to_string(dir.path().join("data/dev-twilio-auth-token")).unwrap();
    assert_no_part_of(key.trim(), &out.all(), "simulate output");
}

#[test]
fn production_ignores_the_development_key_and_still_refuses_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/dev-twilio-auth-token"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let out = run(bin(BIN, dir.path())
        .arg("serve")
        .env("ENVIRONMENT", "production")
        .env("PUBLIC_BASE_URL", "https://myriam.bp-emondage.test")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("CALL_MODE", "ivr")
        .env("STORE", "sqlite")
        .env("BIND_ADDR", "127.0.0.1:0"));
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stderr.contains("TWILIO_AUTH_TOKEN: missing"),
        "{}",
        out.stderr
    );
}
