//! Twilio: request signatures, TwiML, Media Stream frames and tokens, and the extractors that
//! authenticate every Twilio request (webhooks and the Media Stream handshake).

pub mod media;
pub mod rest;
pub mod signature;
pub mod stream_token;
pub mod twiml;
pub mod webhook;

pub use webhook::{TwilioAuth, TwilioForm, TwilioHandshake, TwilioRejection, WebhookAuth};
