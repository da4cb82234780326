//! The six-question lead qualification: one state machine behind both the Vapi bridge and the IVR.
//!
//! - [`machine::process_response`]: pure and deterministic, `(&mut Lead, answer, history) → Outcome`.
//! - [`parsing`]: one domain type per answer (`PersonName`, `Address`, `ServiceType`, …).
//! - [`prompts`]: what Myriam says, in French and English.
//!
//! The current step is never stored: it is the first of the six fields the lead does not have yet
//! ([`Lead::current_field`]).

mod lead;
pub mod listen;
pub mod machine;
pub mod parsing;
pub mod prompts;

pub use lead::*;
pub use machine::HistoryMessage;
pub use parsing::{Address, Description, PersonName, PostalCode, Rejection, ServiceType, Urgency};
