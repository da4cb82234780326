//! The gateway as its own process (`myriam serve`), for tests that kill it, restart it or read its
//! memory: a free loopback port, a clean environment plus the test's variables, ready when
//! `/healthz` answers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl GatewayProcess {
    /// Starts `myriam serve` in `dir` (`ENVIRONMENT=test`, `BIND_ADDR` on a free port, quiet
    /// logs) with `env` on top, and waits until it answers.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_as(dir, env, None).await
    }

    /// As [`GatewayProcess::start`], run as the user and group `ids` (uid, gid) when given: the
    /// tests run as root, whom file permissions do not stop.
    pub async fn start_as(dir: &Path, env: &[(&str, &str)], ids: Option<(u32, u32)>) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = super::bin(env!("CARGO_BIN_EXE_myriam"), dir);
        command
            .arg("serve")
            .env("ENVIRONMENT", "test")
            .env("BIND_ADDR", addr.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some((uid, gid)) = ids {
            use std::os::unix::process::CommandExt as _;
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().expect("start the gateway");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await {
                if r.status().is_success() {
                    return Self {
                        child,
                        addr,
                        client,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gateway did not start");
    }

    /// `kill -9`, and the process reaped.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `fields` as a form (the test environment skips signatures); status and body.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        super::post_form(&self.client, &self.url(path), fields).await
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
