//! Domain newtypes: parsed once at the edge, valid by construction (private fields, `TryFrom`).

mod call;
mod hours;
mod lead;
mod phone;

pub use call::{CALL_STATUS_RANKS, CallSid, ConversationMode, InvalidCallSid, TERMINAL_CALL_RANK};
pub use hours::{BusinessHours, DEFAULT_HOURS, DEFAULT_TIMEZONE, HoursError};
pub use lead::{Language, LeadId, LeadStatus, UnknownLeadStatus};
pub use phone::{InvalidPhoneNumber, PhoneNumber, spoken_digits};
