//! The store suite against the hosted Supabase project, in a throwaway schema that is dropped at
//! the end.
//!
//! Runs when `BP_SKIP_SUPABASE_TESTS` is not `1` and `SUPABASE_URL`, `SUPABASE_SERVICE_ROLE_KEY`
//! and `SUPABASE_DB_URL` are set; otherwise it is skipped with a printed reason
//! (`tests/helpers/live.rs`). The service role key alone cannot create a schema (PostgREST runs no
//! DDL), so the test also needs the project's direct PostgreSQL connection string,
//! `SUPABASE_DB_URL` (Dashboard → Connect → "Direct connection" or "Session pooler", with the
//! database password). With it, the test:
//!
//! 1. creates the schema `bp_live_<random>` by applying `supabase/migrations` with `bp` renamed;
//! 2. exposes it to the Data API by appending it to the list PostgREST serves (read from PostgREST's
//!    own `PGRST106` answer) in `authenticator`'s `pgrst.db_schemas` setting, and reloads
//!    PostgREST's configuration and schema cache (`NOTIFY pgrst`);
//! 3. runs the store suite through `SupabaseStore` (`SUPABASE_URL`, the service role key);
//! 4. whatever happened, restores `authenticator`'s previous `pgrst.db_schemas` setting (or its
//!    absence), drops the schema with `cascade`, and reloads PostgREST again.
//!
//! `psql` comes from the PostgreSQL server binaries `scripts/install-tools.sh` installs.
//!
//! To exercise this path without a hosted project, point it at the local stack:
//! `scripts/supabase-local.sh start`, export what `scripts/supabase-local.sh env` prints, and
//! `SUPABASE_DB_URL=postgres://postgres@127.0.0.1:<MYRIAM_PG_PORT>/myriam` (PostgREST 12 reads
//! `pgrst.db_schemas` from the database: `db-config` is on by default; that hosted Supabase honours
//! it too is an assumption this test has not been able to check).

mod helpers;

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use helpers::live;
use helpers::store_suite::suite;
use myriam::store::supabase::SupabaseStore;
use secrecy::SecretString;

const FLAG: &str = "BP_SKIP_SUPABASE_TESTS";
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/supabase/migrations");

/// `psql`: on PATH, else the newest of Debian's server binaries.
fn psql_program() -> String {
    if Command::new("psql").arg("--version").output().is_ok() {
        return "psql".to_owned();
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .map_or_else(|| "psql".to_owned(), |p| p.display().to_string())
}

/// Runs `sql` on the project's database; stdout, trimmed. The connection string is never printed
/// (it is psql's `-d` argument, so it shows in the local process list while psql runs).
fn psql(db_url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(psql_program())
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(db_url)
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "15")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        // psql's error names the server and the SQL error, not the password.
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// `sql` with every whole-word `bp` (the schema) renamed to `schema`.
fn rename_schema(sql: &str, schema: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find("bp") {
        let before = rest[..i].chars().last().or(prev);
        let after = rest[i + 2..].chars().next();
        out.push_str(&rest[..i]);
        if word(before) || word(after) {
            out.push_str("bp");
        } else {
            out.push_str(schema);
        }
        prev = Some('p');
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// The migrations, in order, for `schema`.
fn migrations_for(schema: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(MIGRATIONS)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| rename_schema(&std::fs::read_to_string(f).unwrap(), schema))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The schemas PostgREST serves, from its `406 PGRST106` answer to a schema it does not serve.
async fn exposed_schemas(url: &str, key: &str) -> Result<Vec<String>, String> {
    let response = reqwest::Client::new()
        .get(format!("{url}/rest/v1/leads?limit=0"))
        .header("apikey", key)
        .bearer_auth(key)
        .header("accept-profile", "bp_no_such_schema_for_the_live_test")
        .send()
        .await
        .map_err(|e| format!("Supabase did not answer: {e}"))?;
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    let message = body["message"].as_str().unwrap_or_default();
    let list = message
        .split_once("one of the following: ")
        .map(|(_, l)| l)
        .ok_or_else(|| format!("unexpected answer to an unknown schema: {body}"))?;
    Ok(list.split(',').map(|s| s.trim().to_owned()).collect())
}

/// Undoes what the test changed on the project, whatever happened to the test.
struct Cleanup {
    db_url: String,
    schema: String,
    /// `authenticator`'s `pgrst.db_schemas` before the test (`None`: it had no such setting).
    previous: Option<String>,
    exposed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut sql = String::new();
        if self.exposed {
            match &self.previous {
                Some(list) => {
                    let _ = write!(
                        sql,
                        "alter role authenticator set pgrst.db_schemas = '{}';",
                        list.replace('\'', "''")
                    );
                }
                None => sql.push_str("alter role authenticator reset pgrst.db_schemas;"),
            }
            sql.push_str("notify pgrst, 'reload config';");
        }
        let _ = write!(
            sql,
            "drop schema if exists {} cascade; notify pgrst, 'reload schema';",
            self.schema
        );
        if let Err(error) = psql(&self.db_url, &sql) {
            live::report_skip(
                "live_supabase cleanup",
                &format!("FAILED to drop {}: {error}", self.schema),
            );
        }
    }
}

#[tokio::test]
async fn the_store_suite_passes_on_the_hosted_project_in_a_throwaway_schema() {
    let Some(values) = live::credentials(
        "live_supabase::the_store_suite_passes_on_the_hosted_project_in_a_throwaway_schema",
        FLAG,
        &[
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_DB_URL",
        ],
    ) else {
        return;
    };
    let [url, key, db_url] = <[String; 3]>::try_from(values).unwrap();
    let url = url.trim_end_matches('/').to_owned();
    let schema = format!(
        "bp_live_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );

    let previous = psql(
        &db_url,
        "select split_part(c, '=', 2) from pg_db_role_setting s join pg_roles r on r.oid = s.setrole, \
         unnest(s.setconfig) c where r.rolname = 'authenticator' and s.setdatabase = 0 \
         and c like 'pgrst.db_schemas=%'",
    )
    .expect("SUPABASE_DB_URL connects");
    let mut cleanup = Cleanup {
        db_url: db_url.clone(),
        schema: schema.clone(),
        previous: Some(previous).filter(|p| !p.is_empty()),
        exposed: false,
    };

    psql(&db_url, &migrations_for(&schema)).expect("the migrations apply to a throwaway schema");
    let mut served = exposed_schemas(&url, &key).await.unwrap();
    served.push(schema.clone());
    cleanup.exposed = true;
    psql(
        &db_url,
        &format!(
            "alter role authenticator set pgrst.db_schemas = '{}'; notify pgrst, 'reload config'; notify pgrst, 'reload schema';",
            served.join(", ").replace('\'', "''")
        ),
    )
    .expect("expose the throwaway schema");

    // PostgREST reloads asynchronously: wait until it serves the new schema.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now_served = exposed_schemas(&url, &key).await.unwrap_or_default();
        if now_served.contains(&schema) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgREST did not pick up pgrst.db_schemas within 60 s (serves {now_served:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let store = SupabaseStore::new(
        &url,
        &SecretString::from(key),
        &schema,
        Duration::from_secs(10),
    );
    suite(&store).await;
    assert_eq!(
        psql(&db_url, &format!("select count(*) from {schema}.leads")).unwrap(),
        "7"
    );
    drop(cleanup);
    assert_eq!(
        psql(
            &db_url,
            &format!("select count(*) from pg_namespace where nspname = '{schema}'")
        )
        .unwrap(),
        "0",
        "the throwaway schema is dropped"
    );
}

#[test]
fn the_schema_rename_touches_the_schema_only() {
    let sql = "create schema bp;\ncreate table bp.leads (bp_x int);\n-- Schema `bp`\ngrant usage on schema bp to service_role;";
    assert_eq!(
        rename_schema(sql, "bp_live_1"),
        "create schema bp_live_1;\ncreate table bp_live_1.leads (bp_x int);\n-- Schema `bp_live_1`\ngrant usage on schema bp_live_1 to service_role;"
    );
    let all = migrations_for("bp_live_2");
    assert!(all.contains("create schema bp_live_2;"));
    assert!(!all.contains(" bp."), "every reference renamed");
}

#[test]
fn the_skip_flag_wins_over_credentials() {
    // The decision itself, without touching the process environment of other tests.
    if live::var(FLAG).as_deref() == Some("1") {
        assert_eq!(
            live::skip_reason(FLAG, &["SUPABASE_URL"]).as_deref(),
            Some("BP_SKIP_SUPABASE_TESTS=1")
        );
    }
    assert_eq!(
        live::skip_reason(FLAG, &["MYRIAM_TEST_SURELY_UNSET_VARIABLE"]).as_deref(),
        (live::var(FLAG).as_deref() != Some("1"))
            .then_some("not set: MYRIAM_TEST_SURELY_UNSET_VARIABLE")
            .or(Some("BP_SKIP_SUPABASE_TESTS=1"))
    );
}
