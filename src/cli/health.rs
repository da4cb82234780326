//! `myriam healthcheck`: asks a running gateway's `/readyz` and exits 0 when it answers 200, 1
//! otherwise. The image's `HEALTHCHECK` runs it, so the runtime image needs no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::secrets::EnvSource;

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to ask (default: `/readyz` on loopback at the port of `BIND_ADDR` / `PORT`).
    #[arg(long)]
    pub url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// Where the gateway listens, seen from inside its own container or host: `BIND_ADDR` (and
/// `PORT`) as `myriam serve` reads them, an unspecified address asked on loopback.
fn default_url(source: &EnvSource) -> String {
    let mut addr: SocketAddr = source
        .get("BIND_ADDR")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    if let Some(port) = source.get("PORT").and_then(|v| v.trim().parse().ok()) {
        addr.set_port(port);
    }
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    format!("http://{addr}/readyz")
}

pub fn run(args: &HealthcheckArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => match EnvSource::load(std::path::Path::new(".env"), false) {
            Ok(source) => default_url(&source),
            Err(error) => {
                eprintln!("myriam healthcheck: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("myriam healthcheck: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let answer = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match answer {
        Ok((status, _)) if status.is_success() => {
            println!("myriam healthcheck: {url} ready ({status})");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            // /readyz says why (draining, store unavailable): no secret and no caller data in it.
            eprintln!(
                "myriam healthcheck: {url} not ready ({status}): {}",
                body.trim()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("myriam healthcheck: {url} did not answer: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_follows_bind_addr_and_port_on_loopback() {
        let url =
            |pairs: &[(&str, &str)]| default_url(&EnvSource::from_pairs(pairs.iter().copied()));
        assert_eq!(url(&[]), "http://127.0.0.1:8080/readyz");
        assert_eq!(
            url(&[("BIND_ADDR", "0.0.0.0:8080")]),
            "http://127.0.0.1:8080/readyz"
        );
        assert_eq!(
            url(&[("BIND_ADDR", "[::]:9000"), ("PORT", "7000")]),
            "http://[::1]:7000/readyz"
        );
        assert_eq!(
            url(&[("BIND_ADDR", "10.1.2.3:8080")]),
            "http://10.1.2.3:8080/readyz"
        );
    }
}
