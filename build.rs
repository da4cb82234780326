//! Stamps the binaries with the git revision they were built from (`myriam --version`,
//! `/healthz`, the `myriam_build_info` metric): `MYRIAM_GIT_REVISION` when set (the image build
//! passes it, since `.git` is not in the build context), else `git rev-parse`, else `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MYRIAM_GIT_REVISION");
    let revision = match std::env::var("MYRIAM_GIT_REVISION") {
        Ok(value) if !value.trim().is_empty() => value.trim().to_owned(),
        _ => {
            // Rebuild when HEAD moves (a commit, a checkout): its reflog changes each time.
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                let dir = PathBuf::from(dir);
                println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
                println!("cargo:rerun-if-changed={}", dir.join("logs/HEAD").display());
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=MYRIAM_REVISION={revision}");
}
