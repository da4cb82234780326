//! What the binary was built from: the crate's version and the git revision (`build.rs`), for
//! `myriam --version`, `/healthz` and the `myriam_build_info` metric.

/// The crate's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`build.rs`: `MYRIAM_GIT_REVISION`, else git),
/// `unknown` when neither was available.
pub const REVISION: &str = env!("MYRIAM_REVISION");
/// `0.1.0 (rev 1a2b3c4d5e6f)`: what `myriam --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("MYRIAM_REVISION"),
    ")"
);
