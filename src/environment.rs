//! `ENVIRONMENT`: where the gateway runs, which decides how strict it is (DESIGN §5). Unset means
//! production: fail closed.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where the gateway runs. Unset means production: fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Development,
    Test,
}

/// The allowed values, in the order error messages list them.
pub const ENVIRONMENT_VALUES: &str = "production, development, test";

/// `ENVIRONMENT` held something other than the three allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ENVIRONMENT has an unsupported value; allowed values: {ENVIRONMENT_VALUES}")]
pub struct InvalidEnvironment;

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Development => "development",
            Environment::Test => "test",
        }
    }

    /// The value of `ENVIRONMENT`; unset or empty means production.
    pub fn from_value(value: Option<&str>) -> Result<Self, InvalidEnvironment> {
        match value.map(str::trim) {
            None | Some("") => Ok(Environment::Production),
            Some(v) => v.parse(),
        }
    }
}

impl FromStr for Environment {
    type Err = InvalidEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "production" => Ok(Environment::Production),
            "development" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            _ => Err(InvalidEnvironment),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
