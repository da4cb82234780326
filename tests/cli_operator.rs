//! `myriam operator …` as a user runs it: the binary in a clean environment, the password on
//! standard input, the store a SQLite file; what it leaves in the store and what it prints.

mod helpers;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use helpers::{Run, bin};

const BIN: &str = env!("CARGO_BIN_EXE_myriam");
const PASSWORD: &str = "Une-longue-phrase-secrète-2026";

fn operator(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd: Command = bin(BIN, dir);
    cmd.env("ENVIRONMENT", "development")
        .env("DATABASE_PATH", dir.join("myriam.db"))
        .arg("operator")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // A command that refuses its arguments (a malformed email) exits without reading its
        // input: the pipe may be closed before the write, which is that refusal, not a failure.
        if let Err(error) = input.write_all(text.as_bytes()) {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn query(dir: &Path, sql: &str) -> String {
    let conn = rusqlite::Connection::open(dir.join("myriam.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn operators_are_added_listed_disabled_and_reset_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let add = operator(
        d,
        &["add", "Admin@BP.example", "--role", "admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(add.code, Some(0), "{}", add.all());
    assert_eq!(add.stdout, "operator admin@bp.example added (admin)\n");
    let hash = query(
        d,
        "SELECT password_hash FROM operators WHERE email = 'admin@bp.example'",
    );
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    helpers::assert_no_part_of(PASSWORD, &add.all(), "the command's output");

    let again = operator(
        d,
        &["add", "admin@bp.example"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("exists already"), "{}", again.all());
    let short = operator(d, &["add", "staff@bp.example"], Some("court\n"));
    assert_eq!(short.code, Some(1));
    assert!(
        short.stderr.contains("at least 12 characters"),
        "{}",
        short.all()
    );
    let bad = operator(d, &["add", "not-an-email"], Some(&format!("{PASSWORD}\n")));
    assert_eq!(bad.code, Some(1));
    let role = operator(d, &["add", "x@bp.example", "--role", "root"], None);
    assert_eq!(role.code, Some(2), "clap refuses the role");

    assert_eq!(
        operator(
            d,
            &["add", "staff@bp.example"],
            Some(&format!("{PASSWORD}\n"))
        )
        .code,
        Some(0)
    );
    let list = operator(d, &["list"], None);
    assert_eq!(
        list.stdout,
        "admin@bp.example\tadmin\tactive\t-\nstaff@bp.example\tstaff\tactive\t-\n"
    );
    assert_eq!(
        operator(d, &["disable", "staff@bp.example"], None).code,
        Some(0)
    );
    assert!(
        operator(d, &["list"], None)
            .stdout
            .contains("staff@bp.example\tstaff\tdisabled")
    );
    assert_eq!(
        operator(d, &["enable", "staff@bp.example"], None).code,
        Some(0)
    );
    assert_eq!(
        operator(d, &["disable", "nobody@bp.example"], None).code,
        Some(1)
    );

    let reset = operator(
        d,
        &["reset-password", "staff@bp.example"],
        Some("Un-autre-mot-de-passe-long\n"),
    );
    assert_eq!(reset.code, Some(0), "{}", reset.all());
    let new_hash = query(
        d,
        "SELECT password_hash FROM operators WHERE email = 'staff@bp.example'",
    );
    assert!(new_hash.starts_with("$argon2id$"));
    assert_ne!(
        new_hash,
        query(
            d,
            "SELECT password_hash FROM operators WHERE email = 'admin@bp.example'"
        )
    );
}

#[test]
#[allow(clippy::too_many_lines)] // a token's life from the command line, read top to bottom
fn api_tokens_are_shown_once_stored_as_digests_owned_and_listed_with_their_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (email, role) in [("admin@bp.example", "admin"), ("staff@bp.example", "staff")] {
        let added = operator(
            d,
            &["add", email, "--role", role],
            Some(&format!("{PASSWORD}\n")),
        );
        assert_eq!(added.code, Some(0), "{}", added.all());
    }
    let created = operator(
        d,
        &[
            "token",
            "create",
            "crm",
            "--role",
            "admin",
            "--operator",
            "admin@bp.example",
            "--expires-days",
            "30",
        ],
        None,
    );
    assert_eq!(created.code, Some(0), "{}", created.all());
    let token = created.stdout.trim();
    assert!(token.starts_with("myr_") && token.len() == 47, "{token}");
    assert!(created.stderr.contains("shown once"));
    let stored = query(d, "SELECT token_hash FROM api_tokens WHERE name = 'crm'");
    assert_eq!(stored, myriam::operators::digest(token));
    assert_eq!(
        query(d, "SELECT role FROM api_tokens WHERE name = 'crm'"),
        "admin"
    );
    assert_eq!(
        query(
            d,
            "SELECT o.email FROM api_tokens t JOIN operators o ON o.id = t.operator_id \
             WHERE t.name = 'crm'"
        ),
        "admin@bp.example"
    );
    assert_eq!(
        query(
            d,
            "SELECT CAST(CAST(round(julianday(expires_at) - julianday(created_at)) AS INTEGER) \
             AS TEXT) FROM api_tokens WHERE name = 'crm'"
        ),
        "30"
    );
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec!["token", "create", name];
        args.extend_from_slice(extra);
        operator(d, &args, None).code
    };
    assert_eq!(
        create("crm", &["--operator", "admin@bp.example"]),
        Some(1),
        "names are unique"
    );
    assert_eq!(
        create("bad name", &["--operator", "admin@bp.example"]),
        Some(1)
    );
    assert_ne!(create("owner-less", &[]), Some(0), "a token has an owner");
    assert_eq!(
        create("up", &["--role", "admin", "--operator", "staff@bp.example"]),
        Some(1),
        "a staff operator cannot own an admin token"
    );
    assert_eq!(
        create("ghost", &["--operator", "nobody@bp.example"]),
        Some(1)
    );
    assert_eq!(create("ci", &["--operator", "staff@bp.example"]), Some(0));

    // The list shows owner, expiry and last use (never the token).
    rusqlite::Connection::open(d.join("myriam.db"))
        .unwrap()
        .execute(
            "UPDATE api_tokens SET last_used_at = '2026-12-06T10:15:00.000Z' WHERE name = 'ci'",
            [],
        )
        .unwrap();
    let listed = operator(d, &["token", "list"], None);
    assert_eq!(listed.code, Some(0), "{}", listed.all());
    assert!(!listed.stdout.contains(token));
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "name\trole\toperator\tcreated\texpires\tlast_used\tstate"
    );
    let ci: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(ci[0], "ci");
    assert_eq!(ci[2], "staff@bp.example");
    assert_eq!(ci[4], "-");
    assert_eq!(ci[5], "2026-12-06T10:15Z");
    assert_eq!(ci[6], "active");
    let crm: Vec<&str> = lines[2].split('\t').collect();
    assert_eq!((crm[0], crm[5], crm[6]), ("crm", "-", "active"));
    assert_ne!(crm[4], "-");

    // Disabling the operator disables their tokens.
    assert_eq!(
        operator(d, &["disable", "staff@bp.example"], None).code,
        Some(0)
    );
    let listed = operator(d, &["token", "list"], None);
    assert!(
        listed
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("\toperator-disabled")
    );

    let revoked = operator(d, &["token", "revoke", "crm"], None);
    assert_eq!(revoked.code, Some(0), "{}", revoked.all());
    assert_eq!(
        operator(d, &["token", "revoke", "crm"], None).code,
        Some(1),
        "already revoked"
    );
    let listed = operator(d, &["token", "list"], None);
    assert!(listed.stdout.lines().nth(2).unwrap().ends_with("\trevoked"));
}

#[test]
fn an_operators_own_phone_is_set_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let add = operator(
        d,
        &["add", "staff@bp.example"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(add.code, Some(0), "{}", add.all());
    // The operator's own phone, where a callback rings first: validated, shown as people read it.
    let set = operator(
        d,
        &["set-phone", "staff@bp.example", "(514) 555-0142"],
        None,
    );
    assert_eq!(set.code, Some(0), "{}", set.all());
    assert_eq!(
        set.stdout,
        "phone of staff@bp.example set to 514 555-0142\n"
    );
    let bad_phone = operator(d, &["set-phone", "staff@bp.example", "555-01"], None);
    assert_eq!(bad_phone.code, Some(1), "{}", bad_phone.all());
    assert!(
        bad_phone
            .stderr
            .contains("not a valid North American phone number")
    );
    assert_eq!(
        operator(d, &["set-phone", "nobody@bp.example", "5145550142"], None).code,
        Some(1)
    );
    assert_eq!(
        operator(d, &["set-phone", "staff@bp.example"], None).code,
        Some(2)
    );
    assert!(
        operator(d, &["list"], None)
            .stdout
            .contains("staff@bp.example\tstaff\tactive\t514 555-0142\n")
    );
    assert_eq!(
        operator(d, &["set-phone", "staff@bp.example", "--clear"], None).code,
        Some(0)
    );
    assert!(
        operator(d, &["list"], None)
            .stdout
            .contains("staff@bp.example\tstaff\tactive\t-\n")
    );
}
