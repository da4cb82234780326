//! TwiML responses, written with an XML writer (`quick-xml`): text and attributes are escaped by the
//! writer, never by hand. Served as `text/xml; charset=utf-8` with a `Content-Length`.

use std::io::Cursor;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use crate::domain::Language;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub text: String,
    pub language: Language,
    pub voice: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    pub action: String,
    pub language: Language,
    /// Words the recogniser should expect (comma-separated in TwiML).
    pub hints: Vec<String>,
    /// Post to `action` even when nothing was heard, so silence is handled by the gateway.
    pub action_on_empty_result: bool,
    /// Seconds to wait for the caller to start speaking.
    pub timeout: u32,
    pub say: Vec<Say>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub url: String,
    pub parameters: Vec<(String, String)>,
}

/// `<Record>`: a voicemail. An empty recording does not request `action`; the next verb runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub action: Option<String>,
    /// Longest recording, in seconds.
    pub max_length: u32,
    pub play_beep: bool,
    /// Seconds of silence that end the recording (Twilio's default 5 when `None`).
    pub timeout: Option<u32>,
    /// Keys that end the recording (`#`); Twilio's default is every key.
    pub finish_on_key: Option<String>,
    /// Where Twilio posts the recording's status (`completed`, `absent`) and URL.
    pub recording_status_callback: Option<String>,
}

/// `<Dial action timeout callerId><Number>…</Number></Dial>`: hands the caller to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Requested with `DialCallStatus` when the dialled leg ends; its TwiML continues the call.
    pub action: String,
    /// Seconds the number rings before `no-answer`.
    pub timeout: u32,
    /// The caller ID the office sees (the caller's number); Twilio's default when `None`.
    pub caller_id: Option<String>,
    /// The number dialled, E.164.
    pub number: String,
}

/// `<Gather input="dtmf" numDigits=…>`: keys only (a callback's "press 1"). Without a key before
/// `timeout`, Twilio runs the next verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keypad {
    pub action: String,
    pub num_digits: u32,
    /// Seconds to wait for the first key.
    pub timeout: u32,
    pub say: Vec<Say>,
}

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Gather(Gather),
    /// `<Connect action=…><Stream url=…><Parameter …/></Stream></Connect>`.
    Connect {
        action: Option<String>,
        stream: Stream,
    },
    Redirect(String),
    Pause(u32),
    Record(Record),
    Dial(Dial),
    Keypad(Keypad),
    Hangup,
}

/// A `<Response>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwiML {
    pub verbs: Vec<Verb>,
}

fn write_say<W: std::io::Write>(w: &mut Writer<W>, say: &Say) -> std::io::Result<()> {
    w.create_element("Say")
        .with_attribute(("language", say.language.speech_tag()))
        .with_attribute(("voice", say.voice.as_str()))
        .write_text_content(BytesText::new(&say.text))?;
    Ok(())
}

fn write_record<W: std::io::Write>(w: &mut Writer<W>, r: &Record) -> std::io::Result<()> {
    let max = r.max_length.to_string();
    let mut el = w
        .create_element("Record")
        .with_attribute(("maxLength", max.as_str()))
        .with_attribute(("playBeep", if r.play_beep { "true" } else { "false" }));
    if let Some(action) = &r.action {
        el = el
            .with_attribute(("action", action.as_str()))
            .with_attribute(("method", "POST"));
    }
    let timeout = r.timeout.map(|t| t.to_string());
    if let Some(timeout) = &timeout {
        el = el.with_attribute(("timeout", timeout.as_str()));
    }
    if let Some(keys) = &r.finish_on_key {
        el = el.with_attribute(("finishOnKey", keys.as_str()));
    }
    if let Some(callback) = &r.recording_status_callback {
        el = el
            .with_attribute(("recordingStatusCallback", callback.as_str()))
            .with_attribute(("recordingStatusCallbackMethod", "POST"))
            .with_attribute(("recordingStatusCallbackEvent", "completed absent"));
    }
    el.write_empty()?;
    Ok(())
}

fn write_dial<W: std::io::Write>(w: &mut Writer<W>, d: &Dial) -> std::io::Result<()> {
    let timeout = d.timeout.to_string();
    let mut el = w
        .create_element("Dial")
        .with_attribute(("action", d.action.as_str()))
        .with_attribute(("method", "POST"))
        .with_attribute(("timeout", timeout.as_str()));
    if let Some(caller_id) = &d.caller_id {
        el = el.with_attribute(("callerId", caller_id.as_str()));
    }
    el.write_inner_content(|w| {
        w.create_element("Number")
            .write_text_content(BytesText::new(&d.number))?;
        Ok(())
    })?;
    Ok(())
}

fn write_verb<W: std::io::Write>(w: &mut Writer<W>, verb: &Verb) -> std::io::Result<()> {
    match verb {
        Verb::Say(say) => write_say(w, say)?,
        Verb::Gather(g) => {
            let timeout = g.timeout.to_string();
            let hints = g.hints.join(", ");
            let mut el = w
                .create_element("Gather")
                .with_attribute(("input", "speech dtmf"))
                .with_attribute(("action", g.action.as_str()))
                .with_attribute(("method", "POST"))
                .with_attribute(("language", g.language.speech_tag()))
                .with_attribute(("speechTimeout", "auto"))
                .with_attribute(("timeout", timeout.as_str()))
                .with_attribute((
                    "actionOnEmptyResult",
                    if g.action_on_empty_result {
                        "true"
                    } else {
                        "false"
                    },
                ));
            if !hints.is_empty() {
                el = el.with_attribute(("hints", hints.as_str()));
            }
            el.write_inner_content(|w| {
                for say in &g.say {
                    write_say(w, say)?;
                }
                Ok(())
            })?;
        }
        Verb::Connect { action, stream } => {
            let mut el = w.create_element("Connect");
            if let Some(action) = action {
                el = el.with_attribute(("action", action.as_str()));
            }
            el.write_inner_content(|w| {
                w.create_element("Stream")
                    .with_attribute(("url", stream.url.as_str()))
                    .write_inner_content(|w| {
                        for (name, value) in &stream.parameters {
                            w.create_element("Parameter")
                                .with_attribute(("name", name.as_str()))
                                .with_attribute(("value", value.as_str()))
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                Ok(())
            })?;
        }
        Verb::Redirect(url) => {
            w.create_element("Redirect")
                .with_attribute(("method", "POST"))
                .write_text_content(BytesText::new(url))?;
        }
        Verb::Pause(length) => {
            w.create_element("Pause")
                .with_attribute(("length", length.to_string().as_str()))
                .write_empty()?;
        }
        Verb::Record(r) => write_record(w, r)?,
        Verb::Dial(d) => write_dial(w, d)?,
        Verb::Keypad(k) => {
            let (digits, timeout) = (k.num_digits.to_string(), k.timeout.to_string());
            w.create_element("Gather")
                .with_attribute(("input", "dtmf"))
                .with_attribute(("numDigits", digits.as_str()))
                .with_attribute(("action", k.action.as_str()))
                .with_attribute(("method", "POST"))
                .with_attribute(("timeout", timeout.as_str()))
                .write_inner_content(|w| {
                    for say in &k.say {
                        write_say(w, say)?;
                    }
                    Ok(())
                })?;
        }
        Verb::Hangup => {
            w.create_element("Hangup").write_empty()?;
        }
    }
    Ok(())
}

impl TwiML {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verbs.push(verb);
        self
    }

    /// The XML document.
    ///
    /// # Panics
    /// Never: writing to memory cannot fail.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new(Cursor::new(Vec::new()));
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .expect("writing to memory");
        w.create_element("Response")
            .write_inner_content(|w| {
                for verb in &self.verbs {
                    write_verb(w, verb)?;
                }
                Ok(())
            })
            .expect("writing to memory");
        String::from_utf8(w.into_inner().into_inner()).expect("the writer emits UTF-8")
    }
}

impl IntoResponse for TwiML {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            self.to_xml(),
        )
            .into_response()
    }
}

/// Reading TwiML back (for `myriam simulate` and tests): the documents this module writes.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `action` of the document's `<Gather>`, if it has one.
pub fn gather_action(xml: &str) -> Option<String> {
    let gather = &xml[xml.find("<Gather ")?..];
    let start = gather.find(" action=\"")? + " action=\"".len();
    let end = start + gather[start..].find('"')?;
    Some(unescape(&gather[start..end]))
}

/// The URL of the document's `<Redirect>`, if it has one.
pub fn redirect_target(xml: &str) -> Option<String> {
    let redirect = &xml[xml.find("<Redirect")?..];
    let start = redirect.find('>')? + 1;
    let end = redirect.find("</Redirect>")?;
    Some(unescape(&redirect[start..end]))
}

/// The text of every `<Say>`, in order.
pub fn spoken_lines(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Say ") {
        let after = &rest[i..];
        let (Some(open), Some(close)) = (after.find('>'), after.find("</Say>")) else {
            break;
        };
        out.push(unescape(&after[open + 1..close]));
        rest = &after[close..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(text: &str) -> Say {
        Say {
            text: text.to_owned(),
            language: Language::Fr,
            voice: "Polly.Gabrielle-Neural".to_owned(),
        }
    }

    #[test]
    fn escapes_text_and_attributes_and_keeps_accents() {
        let xml = TwiML::new()
            .verb(Verb::Say(say(
                r#"Élagage & "abattage" <urgent> d'un érable"#,
            )))
            .verb(Verb::Hangup)
            .to_xml();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say language=\"fr-CA\" \
             voice=\"Polly.Gabrielle-Neural\">Élagage &amp; &quot;abattage&quot; &lt;urgent&gt; \
             d&apos;un érable</Say><Hangup/></Response>"
        );
    }

    #[test]
    fn gather_with_speech_settings_and_nested_say() {
        let xml = TwiML::new()
            .verb(Verb::Gather(Gather {
                action: "https://gw.example.com/twilio/gather?turn=2&silence=0".to_owned(),
                language: Language::En,
                hints: vec!["élagage".to_owned(), "abattage".to_owned()],
                action_on_empty_result: true,
                timeout: 5,
                say: vec![Say {
                    text: "Is it urgent?".to_owned(),
                    language: Language::En,
                    voice: "Polly.Joanna-Neural".to_owned(),
                }],
            }))
            .to_xml();
        assert!(xml.contains(
            "<Gather input=\"speech dtmf\" action=\"https://gw.example.com/twilio/gather?turn=2&amp;silence=0\" \
             method=\"POST\" language=\"en-US\" speechTimeout=\"auto\" timeout=\"5\" \
             actionOnEmptyResult=\"true\" hints=\"élagage, abattage\"><Say language=\"en-US\" \
             voice=\"Polly.Joanna-Neural\">Is it urgent?</Say></Gather>"
        ), "{xml}");
    }

    #[test]
    fn connect_stream_parameters_redirect_pause_record() {
        let xml = TwiML::new()
            .verb(Verb::Connect {
                action: Some("https://gw/twilio/stream-ended".to_owned()),
                stream: Stream {
                    url: "wss://gw/twilio/media".to_owned(),
                    parameters: vec![("lead_id".to_owned(), "a\"b".to_owned())],
                },
            })
            .verb(Verb::Pause(1))
            .verb(Verb::Record(Record {
                action: None,
                max_length: 60,
                play_beep: true,
                timeout: None,
                finish_on_key: None,
                recording_status_callback: None,
            }))
            .verb(Verb::Redirect("/twilio/voice?x=1&y=2".to_owned()))
            .to_xml();
        assert!(xml.contains(
            "<Connect action=\"https://gw/twilio/stream-ended\"><Stream url=\"wss://gw/twilio/media\">\
             <Parameter name=\"lead_id\" value=\"a&quot;b\"/></Stream></Connect><Pause length=\"1\"/>\
             <Record maxLength=\"60\" playBeep=\"true\"/><Redirect method=\"POST\">/twilio/voice?x=1&amp;y=2</Redirect>"
        ), "{xml}");
        assert_eq!(
            redirect_target(&xml).as_deref(),
            Some("/twilio/voice?x=1&y=2")
        );
        assert_eq!(redirect_target("<Response><Hangup/></Response>"), None);
    }

    #[test]
    fn dial_and_voicemail_record() {
        let xml = TwiML::new()
            .verb(Verb::Dial(Dial {
                action: "https://gw/twilio/dial-done".to_owned(),
                timeout: 20,
                caller_id: Some("+15145550123".to_owned()),
                number: "+14505550100".to_owned(),
            }))
            .verb(Verb::Record(Record {
                action: Some("https://gw/twilio/voicemail".to_owned()),
                max_length: 120,
                play_beep: true,
                timeout: Some(5),
                finish_on_key: Some("#".to_owned()),
                recording_status_callback: Some("https://gw/twilio/recording-status".to_owned()),
            }))
            .to_xml();
        assert!(
            xml.contains(
                "<Dial action=\"https://gw/twilio/dial-done\" method=\"POST\" timeout=\"20\" \
                 callerId=\"+15145550123\"><Number>+14505550100</Number></Dial>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<Record maxLength=\"120\" playBeep=\"true\" action=\"https://gw/twilio/voicemail\" \
                 method=\"POST\" timeout=\"5\" finishOnKey=\"#\" \
                 recordingStatusCallback=\"https://gw/twilio/recording-status\" \
                 recordingStatusCallbackMethod=\"POST\" recordingStatusCallbackEvent=\"completed absent\"/>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn documents_read_back() {
        let xml = TwiML::new()
            .verb(Verb::Gather(Gather {
                action: "/twilio/gather?turn=3&silence=0".to_owned(),
                language: Language::Fr,
                hints: Vec::new(),
                action_on_empty_result: true,
                timeout: 5,
                say: vec![say("C'est noté & merci <3")],
            }))
            .verb(Verb::Say(say("Bonne journée")))
            .to_xml();
        assert_eq!(
            gather_action(&xml).as_deref(),
            Some("/twilio/gather?turn=3&silence=0")
        );
        assert_eq!(
            spoken_lines(&xml),
            ["C'est noté & merci <3", "Bonne journée"]
        );
        assert_eq!(
            gather_action(&TwiML::new().verb(Verb::Hangup).to_xml()),
            None
        );
    }

    #[test]
    fn responses_are_text_xml_utf8() {
        let response = TwiML::new().verb(Verb::Hangup).into_response();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/xml; charset=utf-8"
        );
    }
}
