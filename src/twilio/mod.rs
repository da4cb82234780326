//! Twilio: request signatures, TwiML, and the verified-webhook extractor every Twilio route uses.

pub mod media;
pub mod signature;
pub mod stream_token;
pub mod twiml;
pub mod webhook;

pub use webhook::{TwilioForm, TwilioRejection, WebhookAuth};
