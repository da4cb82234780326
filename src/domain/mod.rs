//! Domain newtypes: parsed once at the edge, valid by construction (private fields, `TryFrom`).

mod call;
mod lead;
mod phone;

pub use call::{CallSid, ConversationMode, InvalidCallSid};
pub use lead::{Language, LeadId, LeadStatus, UnknownLeadStatus};
pub use phone::{InvalidPhoneNumber, PhoneNumber, spoken_digits};
