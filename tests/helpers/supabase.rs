//! A real Supabase-like stack for tests: a throwaway PostgreSQL cluster (15, 16 or 17) (shared by the tests of
//! one run, one fresh database each), a real PostgREST 12 per test, and `supabase_gateway` in front
//! for `/rest/v1` and the `apikey` check. Started through `scripts/`, the same scripts developers
//! use; never skipped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn script(name: &str) -> PathBuf {
    Path::new(ROOT).join("scripts").join(name)
}

/// The test cluster, distinct from a developer's (`scripts/supabase-local.sh`).
fn pg_env(cmd: &mut Command) -> &mut Command {
    let dir = std::env::var("MYRIAM_TEST_PG_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("myriam-test-pg")
            .display()
            .to_string()
    });
    let port = std::env::var("MYRIAM_TEST_PG_PORT").unwrap_or_else(|_| "54339".to_owned());
    cmd.env("MYRIAM_PG_DIR", dir).env("MYRIAM_PG_PORT", port)
}

fn run_script(name: &str, args: &[&str]) -> String {
    let out = pg_env(Command::new("bash").arg(script(name)).args(args))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static CLUSTER: Mutex<bool> = Mutex::new(false);
static POSTGREST: Mutex<Option<PathBuf>> = Mutex::new(None);

fn ensure_cluster() {
    let mut started = CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*started {
        run_script("local-pg.sh", &["start"]);
        *started = true;
    }
}

fn postgrest_binary() -> PathBuf {
    let mut bin = POSTGREST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    bin.get_or_insert_with(|| PathBuf::from(run_script("install-postgrest.sh", &[]).trim()))
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HS256 JWT with a `role` claim, as Supabase's keys are.
pub fn mint_jwt(secret: &str, role: &str) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload =
        b64(format!(r#"{{"role":"{role}","iat":1700000000,"exp":4102444800}}"#).as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", b64(&mac.finalize().into_bytes()))
}

/// One test's database, PostgREST and gateway. Dropped: processes killed, database dropped.
pub struct SupabaseStack {
    pub db: String,
    /// `SUPABASE_URL` for the gateway (the store appends `/rest/v1`).
    pub url: String,
    pub service_key: String,
    pub anon_key: String,
    jwt_secret: String,
    postgrest_port: u16,
    postgrest: Option<Child>,
    gateway: Child,
}

impl SupabaseStack {
    pub fn start() -> Self {
        ensure_cluster();
        let db = format!("t_{}", uuid::Uuid::new_v4().simple());
        run_script("local-pg.sh", &["createdb", &db]);
        let jwt_secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        let service_key = mint_jwt(&jwt_secret, "service_role");
        let anon_key = mint_jwt(&jwt_secret, "anon");
        let postgrest_port = free_port();
        let mut stack = Self {
            db,
            url: String::new(),
            service_key,
            anon_key,
            jwt_secret,
            postgrest_port,
            postgrest: None,
            gateway: Command::new("true").spawn().unwrap(),
        };
        stack.start_postgrest();
        let mut gateway = Command::new(env!("CARGO_BIN_EXE_supabase_gateway"))
            .env(
                "MYRIAM_GATEWAY_UPSTREAM",
                format!("http://127.0.0.1:{postgrest_port}"),
            )
            .env(
                "MYRIAM_GATEWAY_API_KEYS",
                format!("{},{}", stack.service_key, stack.anon_key),
            )
            .env("MYRIAM_GATEWAY_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn supabase_gateway");
        let mut line = String::new();
        BufReader::new(gateway.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected gateway output {line:?}"))
            .to_owned();
        stack.url = format!("http://{addr}");
        stack.gateway = gateway;
        stack
    }

    /// Starts (again) PostgREST on this stack's port and waits until its schema cache is loaded.
    pub fn start_postgrest(&mut self) {
        assert!(self.postgrest.is_none(), "PostgREST already running");
        let uri = run_script("local-pg.sh", &["url", &self.db])
            .trim()
            .to_owned();
        let child = Command::new(postgrest_binary())
            .env_clear()
            .env("PGRST_DB_URI", uri)
            .env("PGRST_DB_SCHEMAS", "bp")
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_JWT_SECRET", &self.jwt_secret)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", self.postgrest_port.to_string())
            .env("PGRST_DB_POOL", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgrest");
        self.postgrest = Some(child);
        let started = Instant::now();
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", self.postgrest_port))
                .ok()
                .and_then(|mut s| {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                    s.write_all(b"GET / HTTP/1.0\r\nAccept: application/json\r\n\r\n")
                        .ok()?;
                    let mut buf = [0u8; 12];
                    s.read_exact(&mut buf).ok()?;
                    Some(buf[9..12] == *b"200")
                })
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "PostgREST did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills PostgREST: Supabase is "down" for the gateway (which answers 502).
    pub fn stop_postgrest(&mut self) {
        if let Some(mut child) = self.postgrest.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs SQL as the superuser in this stack's database; returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        run_script(
            "local-pg.sh",
            &["psql", &self.db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        )
        .trim()
        .to_owned()
    }
}

impl Drop for SupabaseStack {
    fn drop(&mut self) {
        self.stop_postgrest();
        // SIGTERM first: the gateway exits cleanly (and writes its coverage profile under
        // `make coverage`); SIGKILL if it has not within 2 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.gateway.id().to_string()])
            .status();
        for _ in 0..40 {
            if matches!(self.gateway.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.gateway.kill();
        let _ = self.gateway.wait();
        let _ = pg_env(
            Command::new("bash")
                .arg(script("local-pg.sh"))
                .args(["dropdb", &self.db]),
        )
        .output();
    }
}
