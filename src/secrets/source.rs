//! Where variables come from: the process environment over an optional `.env` file, never
//! mutating the process. Errors keep the position in the file, never the line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Where variables come from: the real environment layered over an optional `.env` file.
///
/// The real environment always wins. Reading never mutates the process environment.
#[derive(Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values may be secrets.
        f.debug_struct("EnvSource")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A `.env` file that could not be read or parsed. Carries the line, never its text.
#[derive(Debug, thiserror::Error)]
#[error("cannot read env file {path}: {reason}")]
pub struct EnvFileError {
    pub path: String,
    pub reason: String,
}

impl EnvSource {
    /// An explicit set of variables (tests, or callers that assembled their own).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The process environment over `file` when it exists. A missing default `.env` is not an error;
    /// `required_file = true` (an explicit `--env-file`) makes it one.
    pub fn load(file: &Path, required_file: bool) -> Result<Self, EnvFileError> {
        let mut vars = BTreeMap::new();
        if file.exists() || required_file {
            let iter = dotenvy::from_path_iter(file).map_err(|e| EnvFileError {
                path: file.display().to_string(),
                reason: describe_dotenv_error(&e),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| EnvFileError {
                    path: file.display().to_string(),
                    reason: describe_dotenv_error(&e),
                })?;
                vars.insert(k, v);
            }
        }
        for (k, v) in std::env::vars_os() {
            if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
                vars.insert(k, v);
            }
        }
        Ok(Self { vars })
    }

    /// The raw value, if set. Callers that hold a secret wrap it in a `SecretString` at once.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// dotenvy's errors quote the offending line, which may hold a secret: keep only where it failed.
fn describe_dotenv_error(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("syntax error at character {index}"),
        dotenvy::Error::Io(io) => io.kind().to_string(),
        dotenvy::Error::EnvVar(_) => "invalid variable".to_owned(),
        _ => "unreadable".to_owned(),
    }
}
