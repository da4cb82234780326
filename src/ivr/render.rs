//! The IVR's TwiML: `<Gather>` with the question and recognition hints, `<Say>` in the lead's
//! language and voice, the goodbye and hang-up, and `<Connect><Stream>` for a bridged call.

use crate::calls::{BridgeTarget, HandOff};
use crate::config::{PublicBaseUrl, Settings, Voices};
use crate::domain::{CallSid, Language, LeadStatus};
use crate::qualification::{Field, Lead, Speaker, prompts};
use crate::twilio::stream_token;
use crate::twilio::twiml::{Dial, Gather, Record, Say, TwiML, Verb};

/// Seconds the office line rings before the caller goes to voicemail.
pub const DIAL_TIMEOUT_SECS: u32 = 20;
/// Longest voicemail, in seconds.
pub const VOICEMAIL_MAX_SECS: u32 = 120;

/// A gateway URL Twilio posts to: absolute under `PUBLIC_BASE_URL`, else relative.
fn callback_url(path: &str, settings: &Settings) -> String {
    settings
        .public_base_url
        .as_ref()
        .map_or_else(|| path.to_owned(), |b| b.join(path))
}

/// The state a `<Gather action>` URL carries: the conversation length it was rendered at and the
/// silences so far. Written here and read back here, so the two never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatherAction {
    pub turn: Option<usize>,
    pub silence: u32,
    /// How many times this answer was already held: sent back through `<Redirect>` because the
    /// instance that got it was behind on the call (see [`GatherAction::held_url`]).
    pub held: u32,
}

impl GatherAction {
    /// Where `<Gather>` posts: absolute under `PUBLIC_BASE_URL`, else relative to the document.
    pub fn url(turn: usize, silence: u32, base: Option<&PublicBaseUrl>) -> String {
        let path = format!("/twilio/gather?turn={turn}&silence={silence}");
        base.map_or_else(|| path.clone(), |b| b.join(&path))
    }

    /// Where a held answer goes again: the same `turn` and `silence`, `held` one more, and the
    /// caller's answer itself (`speech`, `digits`), since Twilio's `<Redirect>` posts only the
    /// call's parameters. The query never reaches a log line or Sentry (both keep the path only).
    pub fn held_url(
        &self,
        speech: Option<&str>,
        digits: Option<&str>,
        base: Option<&PublicBaseUrl>,
    ) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(turn) = self.turn {
            query.append_pair("turn", &turn.to_string());
        }
        query.append_pair("silence", &self.silence.to_string());
        query.append_pair("held", &(self.held + 1).to_string());
        if let Some(speech) = speech {
            query.append_pair("speech", speech);
        }
        if let Some(digits) = digits {
            query.append_pair("digits", digits);
        }
        let path = format!("/twilio/gather?{}", query.finish());
        base.map_or_else(|| path.clone(), |b| b.join(&path))
    }

    /// Reads the action back from the query's `turn`, `silence` and `held` (`query` gives a value
    /// by name).
    pub fn from_query<'a>(query: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            turn: query("turn").and_then(|t| t.parse().ok()),
            silence: query("silence").and_then(|s| s.parse().ok()).unwrap_or(0),
            held: query("held").and_then(|s| s.parse().ok()).unwrap_or(0),
        }
    }
}

/// Recognition hints for the field being asked.
fn hints(field: Option<Field>, language: Language) -> Vec<String> {
    let words: &[&str] = match (field, language) {
        (Some(Field::TypeService), Language::Fr) => &[
            "élagage",
            "émondage",
            "abattage",
            "essouchement",
            "souche",
            "haie",
            "tempête",
            "plantation",
            "évaluation",
        ],
        (Some(Field::TypeService), Language::En) => &[
            "pruning",
            "tree removal",
            "stump",
            "hedge",
            "storm",
            "planting",
            "assessment",
        ],
        (Some(Field::Urgence), Language::Fr) => &["oui", "non", "urgent", "pas urgent"],
        (Some(Field::Urgence), Language::En) => &["yes", "no", "urgent", "not urgent"],
        (Some(Field::Telephone), Language::Fr) => &["oui", "non", "c'est ça"],
        (Some(Field::Telephone), Language::En) => &["yes", "no", "that's right"],
        _ => &[],
    };
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn say(text: &str, language: Language, voices: &Voices) -> Say {
    Say {
        text: text.to_owned(),
        language,
        voice: voices.for_language(language).to_owned(),
    }
}

/// `message` then a `<Gather>` for the next answer.
pub(super) fn ask(lead: &Lead, message: &str, silence: u32, settings: &Settings) -> TwiML {
    TwiML::new().verb(Verb::Gather(Gather {
        action: GatherAction::url(
            lead.conversation.len(),
            silence,
            settings.public_base_url.as_ref(),
        ),
        language: lead.language,
        hints: hints(lead.current_field(), lead.language),
        action_on_empty_result: true,
        timeout: 6,
        say: vec![say(message, lead.language, &settings.twilio.voices)],
    }))
}

/// `message` then hang up.
pub(super) fn goodbye(lead: &Lead, message: &str, settings: &Settings) -> TwiML {
    TwiML::new()
        .verb(Verb::Say(say(
            message,
            lead.language,
            &settings.twilio.voices,
        )))
        .verb(Verb::Hangup)
}

fn last_myriam_line(lead: &Lead) -> Option<&str> {
    lead.conversation
        .iter()
        .rev()
        .find(|t| t.speaker == Speaker::Myriam)
        .map(|t| t.text.as_str())
}

/// What the call looks like now: the last thing Myriam said, asked again or with a goodbye; for a
/// lead handed to people, the transfer or the voicemail again.
pub fn render_current(lead: &Lead, settings: &Settings) -> TwiML {
    if lead.status == LeadStatus::Qualifie && lead.awaiting_text_consent() {
        // The text question (`CALLER_SMS=1`), asked again as first said: the confirmation, then
        // the question.
        let mut lines = lead
            .conversation
            .iter()
            .rev()
            .filter(|t| t.speaker == Speaker::Myriam)
            .map(|t| t.text.as_str());
        let question = lines.next().unwrap_or_default();
        let message = lines
            .next()
            .map_or_else(|| question.to_owned(), |c| format!("{c} {question}"));
        return ask(lead, &message, 0, settings);
    }
    let message = last_myriam_line(lead).map_or_else(
        || match lead.current_field() {
            Some(Field::NomComplet) | None => {
                prompts::opening(lead.language, crate::calls::greeting(settings))
            }
            Some(field) => prompts::question_for(lead, field),
        },
        str::to_owned,
    );
    match lead.status {
        LeadStatus::Transfere => match &settings.office.transfer_number {
            Some(number) => transfer(lead, &message, number, settings),
            // The line was removed from the configuration since: voicemail.
            None => voicemail(lead, &message, settings),
        },
        LeadStatus::Rappel => voicemail(lead, &message, settings),
        status if status.is_final() => goodbye(lead, &message, settings),
        _ => ask(lead, &message, 0, settings),
    }
}

/// The transfer or the voicemail for a lead whose status does not say it (a qualified lead keeps
/// its status when the caller asks for a person afterwards).
pub fn render_hand_off(lead: &Lead, target: HandOff, settings: &Settings) -> TwiML {
    let message = crate::calls::hand_off_line(lead, target);
    match (target, &settings.office.transfer_number) {
        (HandOff::Transfer, Some(number)) => transfer(lead, &message, number, settings),
        _ => voicemail(lead, &message, settings),
    }
}

/// The hand-off sentence, then `<Dial>` to the office line with the caller's number as caller ID
/// (Twilio's default, the caller's number, when the caller ID is not a valid number).
fn transfer(lead: &Lead, message: &str, number: &str, settings: &Settings) -> TwiML {
    TwiML::new()
        .verb(Verb::Say(say(
            message,
            lead.language,
            &settings.twilio.voices,
        )))
        .verb(Verb::Dial(Dial {
            action: callback_url("/twilio/dial-done", settings),
            timeout: DIAL_TIMEOUT_SECS,
            caller_id: lead.offered_phone.as_ref().map(|p| p.as_e164().to_owned()),
            number: number.to_owned(),
        }))
}

/// The voicemail message, the beep and `<Record>`; then a goodbye, which an empty recording (no
/// action requested) reaches too.
fn voicemail(lead: &Lead, message: &str, settings: &Settings) -> TwiML {
    TwiML::new()
        .verb(Verb::Say(say(
            message,
            lead.language,
            &settings.twilio.voices,
        )))
        .verb(Verb::Record(Record {
            action: Some(callback_url("/twilio/voicemail", settings)),
            max_length: VOICEMAIL_MAX_SECS,
            play_beep: true,
            timeout: Some(5),
            finish_on_key: Some("#".to_owned()),
            recording_status_callback: Some(callback_url("/twilio/recording-status", settings)),
        }))
        .verb(Verb::Say(say(
            prompts::voicemail_goodbye(lead.language),
            lead.language,
            &settings.twilio.voices,
        )))
        .verb(Verb::Hangup)
}

/// After the voicemail: thanks, then hang up.
pub fn voicemail_goodbye(lead: &Lead, settings: &Settings) -> TwiML {
    goodbye(lead, prompts::voicemail_goodbye(lead.language), settings)
}

/// `<Connect action><Stream url><Parameter lead_id/><Parameter call_sid/><Parameter token/>`: the
/// token is signed, expiring and single-use (see [`crate::twilio::stream_token`]).
pub(super) fn connect(lead: &Lead, call_sid: &CallSid, target: &BridgeTarget) -> TwiML {
    // The lead's creation time makes a retry's token (and TwiML) the same as the first answer's.
    let issued = lead
        .created_at
        .map_or_else(stream_token::now, time::OffsetDateTime::unix_timestamp);
    let token = target.tokens.issue(call_sid, lead.id, issued);
    TwiML::new().verb(Verb::Connect {
        action: Some(target.action_url.clone()),
        stream: crate::twilio::twiml::Stream {
            url: target.stream_url.clone(),
            parameters: stream_token::parameters(call_sid, lead.id, token),
        },
    })
}
