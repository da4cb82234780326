//! The development-only Twilio signing key: what lets `make run` take a call out of the box.
//!
//! In `ENVIRONMENT=development` without `TWILIO_AUTH_TOKEN` (and without `BP_TWILIO_TEST_MODE=1`),
//! `myriam serve` generates a random 32-hex key once, keeps it in [`FILE_NAME`] next to the SQLite
//! file (`data/dev-twilio-auth-token` by default, mode 0600, git-ignored with `data/`), and checks
//! every Twilio signature against it. `myriam simulate`, run from the same directory, signs with the
//! same file. Signatures are still verified; production never reads the file (its guard refuses a
//! missing `TWILIO_AUTH_TOKEN` before anything starts), and test mode bypasses signatures anyway.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::config::Settings;
use crate::environment::Environment;

/// The key's file, in the directory of `DATABASE_PATH`.
pub const FILE_NAME: &str = "dev-twilio-auth-token";

/// Where the development key of a gateway whose SQLite file is `database_path` lives.
pub fn path_for(database_path: &Path) -> PathBuf {
    database_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(FILE_NAME)
}

fn well_formed(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The key stored at `path`, if there is a well-formed one.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|k| well_formed(k))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The key at `path`, created (random, owner-only) when absent or malformed.
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // 122 random bits from the OS, in the shape of a Twilio auth token (32 hex characters).
    let key = uuid::Uuid::new_v4().simple().to_string();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(key)
}

/// In development without a Twilio token (and signatures not switched off), signs with the
/// development key: returns its path, to be logged (never the key). Anywhere else, does nothing.
pub fn apply(settings: &mut Settings) -> std::io::Result<Option<PathBuf>> {
    if settings.environment != Environment::Development
        || settings.twilio.auth_token.is_some()
        || settings.twilio.test_mode
    {
        return Ok(None);
    }
    let path = path_for(&settings.store.database_path);
    let key = load_or_create(&path)?;
    settings.twilio.auth_token = Some(SecretString::from(key));
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::secrets::EnvSource;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_source(&EnvSource::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn development_without_a_token_gets_a_stable_owner_only_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/myriam.db");
        let db = db.to_str().unwrap();
        let mut dev = settings(&[("ENVIRONMENT", "development"), ("DATABASE_PATH", db)]);
        let path = apply(&mut dev).unwrap().expect("a development key");
        assert_eq!(path, dir.path().join("data").join(FILE_NAME));
        let key = dev
            .twilio
            .auth_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        assert!(well_formed(&key));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A restart keeps the key, so a running `simulate` and a restarted gateway agree.
        let mut again = settings(&[("ENVIRONMENT", "development"), ("DATABASE_PATH", db)]);
        apply(&mut again).unwrap();
        assert_eq!(again.twilio.auth_token.unwrap().expose_secret(), key);
        assert_eq!(read(&path).unwrap().as_deref(), Some(key.as_str()));
    }

    #[test]
    fn a_configured_token_test_mode_and_other_environments_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("myriam.db");
        let db = db.to_str().unwrap();
        for pairs in [
            vec![
                ("ENVIRONMENT", "development"),
                ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
            ],
            vec![("ENVIRONMENT", "development"), ("BP_TWILIO_TEST_MODE", "1")],
            vec![("ENVIRONMENT", "test")],
        ] {
            let mut pairs = pairs;
            pairs.push(("DATABASE_PATH", db));
            let mut s = settings(&pairs);
            let before = s
                .twilio
                .auth_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned());
            assert_eq!(apply(&mut s).unwrap(), None, "{pairs:?}");
            assert_eq!(
                s.twilio.auth_token.map(|t| t.expose_secret().to_owned()),
                before
            );
        }
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn path_is_next_to_the_database() {
        assert_eq!(
            path_for(Path::new("data/myriam.db")),
            Path::new("data").join(FILE_NAME)
        );
        assert_eq!(
            path_for(Path::new("myriam.db")),
            Path::new(".").join(FILE_NAME)
        );
    }
}
