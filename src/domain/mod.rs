//! Domain newtypes: parsed once at the edge, valid by construction (private fields, `TryFrom`).

mod lead;
mod phone;

pub use lead::{Language, LeadId, LeadStatus, UnknownLeadStatus};
pub use phone::{InvalidPhoneNumber, PhoneNumber, spoken_digits};
