//! The one catalogue of every environment variable the gateway reads.
//!
//! [`crate::config::Settings`] and the `check_secrets` binary both read [`CATALOGUE`]; the README's
//! variable table and `.env.example` are checked against it by tests, so none of them can drift.
//!
//! Nothing in this module ever returns, formats or logs a variable's *value*: a [`Check`] carries the
//! name, the [`Status`] and, for a malformed value, a static description of the expected shape.

mod catalogue;
mod report;
mod shapes;
mod source;

pub use catalogue::*;
pub use report::*;
pub use shapes::*;
pub use source::*;
