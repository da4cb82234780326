//! Media Streams frames: every text frame from Twilio becomes one [`MediaFrame`] at the edge, with
//! an [`MediaFrame::Unknown`] variant for events Twilio may add; what the gateway sends back is
//! built by [`Outbound`] (only `media`, `mark` and `clear` are allowed on a stream).
//!
//! Parsing is lenient about extra fields and the string/number forms of counters, strict about the
//! payload: base64 that does not decode is an error, never silently empty audio.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// One frame from Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaFrame {
    Connected,
    Start(StreamStart),
    /// Caller audio: raw µ-law, 8 kHz (usually 160 bytes = 20 ms).
    Media {
        stream_sid: String,
        track: Option<String>,
        chunk: Option<u64>,
        timestamp_ms: Option<u64>,
        payload: Vec<u8>,
    },
    Dtmf {
        stream_sid: String,
        digit: String,
    },
    /// A mark we sent has been played (or cleared).
    Mark {
        stream_sid: String,
        name: String,
    },
    Stop {
        stream_sid: String,
        call_sid: Option<String>,
    },
    /// An event this gateway does not know (logged, ignored).
    Unknown {
        event: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub stream_sid: String,
    pub call_sid: Option<String>,
    pub account_sid: Option<String>,
    /// `<Parameter>`s of the `<Stream>`.
    pub custom_parameters: BTreeMap<String, String>,
    pub encoding: Option<String>,
    pub sample_rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is not a JSON object")]
    NotJson,
    #[error("the frame has no event")]
    NoEvent,
    #[error("{0} frame without streamSid")]
    NoStreamSid(&'static str),
    #[error("media payload is not base64")]
    BadPayload,
    #[error("{0} frame is missing {1}")]
    Missing(&'static str, &'static str),
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// Counters arrive as strings (`"5"`), sometimes as numbers.
fn counter(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn stream_sid(v: &Value, event: &'static str) -> Result<String, FrameError> {
    text(v, &["streamSid"])
        .or_else(|| text(v, &["start", "streamSid"]))
        .map(str::to_owned)
        .ok_or(FrameError::NoStreamSid(event))
}

/// The `media` frame, borrowed: the hot path (50 a second per call) allocates only the audio.
#[derive(serde::Deserialize)]
struct BorrowedMedia<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<&'a str>,
    #[serde(borrow)]
    media: Option<BorrowedPayload<'a>>,
}

/// Counters as Twilio sends them (strings); a number falls back to the lenient path.
#[derive(serde::Deserialize)]
struct BorrowedPayload<'a> {
    #[serde(borrow)]
    payload: Option<&'a str>,
    #[serde(borrow)]
    track: Option<&'a str>,
    #[serde(borrow)]
    chunk: Option<&'a str>,
    #[serde(borrow)]
    timestamp: Option<&'a str>,
}

impl MediaFrame {
    pub fn parse(frame: &str) -> Result<Self, FrameError> {
        // Fast path: a plain media frame (no escapes in its strings) parses without a JSON tree.
        if let Ok(BorrowedMedia {
            event: "media",
            stream_sid: Some(stream_sid),
            media:
                Some(BorrowedPayload {
                    payload: Some(payload),
                    track,
                    chunk,
                    timestamp,
                }),
        }) = serde_json::from_str::<BorrowedMedia>(frame)
        {
            return Ok(MediaFrame::Media {
                stream_sid: stream_sid.to_owned(),
                track: track.map(str::to_owned),
                chunk: chunk.and_then(|c| c.trim().parse().ok()),
                timestamp_ms: timestamp.and_then(|t| t.trim().parse().ok()),
                payload: base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .map_err(|_| FrameError::BadPayload)?,
            });
        }
        let v: Value = serde_json::from_str(frame).map_err(|_| FrameError::NotJson)?;
        if !v.is_object() {
            return Err(FrameError::NotJson);
        }
        let event = text(&v, &["event"]).ok_or(FrameError::NoEvent)?;
        Ok(match event {
            "connected" => MediaFrame::Connected,
            "start" => MediaFrame::Start(StreamStart {
                stream_sid: stream_sid(&v, "start")?,
                call_sid: text(&v, &["start", "callSid"]).map(str::to_owned),
                account_sid: text(&v, &["start", "accountSid"]).map(str::to_owned),
                custom_parameters: v
                    .get("start")
                    .and_then(|s| s.get("customParameters"))
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
                encoding: text(&v, &["start", "mediaFormat", "encoding"]).map(str::to_owned),
                sample_rate: counter(&v, &["start", "mediaFormat", "sampleRate"]),
            }),
            "media" => {
                let payload = text(&v, &["media", "payload"])
                    .ok_or(FrameError::Missing("media", "media.payload"))?;
                MediaFrame::Media {
                    stream_sid: stream_sid(&v, "media")?,
                    track: text(&v, &["media", "track"]).map(str::to_owned),
                    chunk: counter(&v, &["media", "chunk"]),
                    timestamp_ms: counter(&v, &["media", "timestamp"]),
                    payload: base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .map_err(|_| FrameError::BadPayload)?,
                }
            }
            "dtmf" => MediaFrame::Dtmf {
                stream_sid: stream_sid(&v, "dtmf")?,
                digit: text(&v, &["dtmf", "digit"])
                    .ok_or(FrameError::Missing("dtmf", "dtmf.digit"))?
                    .to_owned(),
            },
            "mark" => MediaFrame::Mark {
                stream_sid: stream_sid(&v, "mark")?,
                name: text(&v, &["mark", "name"]).unwrap_or_default().to_owned(),
            },
            "stop" => MediaFrame::Stop {
                stream_sid: stream_sid(&v, "stop")?,
                call_sid: text(&v, &["stop", "callSid"]).map(str::to_owned),
            },
            other => MediaFrame::Unknown {
                event: other.chars().take(64).collect(),
            },
        })
    }
}

/// What the gateway may send on a bidirectional stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound<'a> {
    /// Audio for the caller: raw µ-law, base64-encoded on the wire.
    Media {
        stream_sid: &'a str,
        audio: &'a [u8],
    },
    Mark {
        stream_sid: &'a str,
        name: &'a str,
    },
    /// Drop buffered audio (barge-in).
    Clear {
        stream_sid: &'a str,
    },
}

impl Outbound<'_> {
    /// The JSON text frame, written directly (this runs for every 20 ms of assistant audio).
    pub fn to_json(&self) -> String {
        let sid = |sid: &str| serde_json::to_string(sid).unwrap_or_else(|_| "\"\"".to_owned());
        match self {
            Outbound::Media { stream_sid, audio } => {
                let mut out = String::with_capacity(64 + audio.len() * 4 / 3 + stream_sid.len());
                out.push_str(r#"{"event":"media","media":{"payload":""#);
                base64::engine::general_purpose::STANDARD.encode_string(audio, &mut out);
                out.push_str(r#""},"streamSid":"#);
                push_json_string(&mut out, stream_sid);
                out.push('}');
                out
            }
            Outbound::Mark { stream_sid, name } => format!(
                r#"{{"event":"mark","mark":{{"name":{}}},"streamSid":{}}}"#,
                serde_json::to_string(name).unwrap_or_else(|_| "\"\"".to_owned()),
                sid(stream_sid)
            ),
            Outbound::Clear { stream_sid } => {
                format!(r#"{{"event":"clear","streamSid":{}}}"#, sid(stream_sid))
            }
        }
    }
}

/// Appends `text` as a JSON string. A stream SID is `MZ` + hex in practice and is copied as is (this
/// runs for every 20 ms of assistant audio); anything else is escaped properly all the same.
fn push_json_string(out: &mut String, text: &str) {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_frames_parse() {
        assert_eq!(
            MediaFrame::parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(MediaFrame::Connected)
        );
        let start = MediaFrame::parse(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1",
               "tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},
               "customParameters":{"lead_id":"L-1","call_sid":"CA1"}},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        let MediaFrame::Start(start) = start else {
            panic!("start")
        };
        assert_eq!(start.stream_sid, "MZ1");
        assert_eq!(start.call_sid.as_deref(), Some("CA1"));
        assert_eq!(start.custom_parameters["lead_id"], "L-1");
        assert_eq!(start.sample_rate, Some(8000));
        let audio = vec![0xffu8; 160];
        let payload = base64::engine::general_purpose::STANDARD.encode(&audio);
        assert_eq!(
            MediaFrame::parse(&format!(
                r#"{{"event":"media","sequenceNumber":"4","media":{{"track":"inbound","chunk":"2","timestamp":"5","payload":"{payload}"}},"streamSid":"MZ1"}}"#
            )),
            Ok(MediaFrame::Media {
                stream_sid: "MZ1".into(),
                track: Some("inbound".into()),
                chunk: Some(2),
                timestamp_ms: Some(5),
                payload: audio,
            })
        );
        assert_eq!(
            MediaFrame::parse(
                r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#
            ),
            Ok(MediaFrame::Dtmf {
                stream_sid: "MZ1".into(),
                digit: "1".into()
            })
        );
        assert_eq!(
            MediaFrame::parse(
                r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"turn-3"}}"#
            ),
            Ok(MediaFrame::Mark {
                stream_sid: "MZ1".into(),
                name: "turn-3".into()
            })
        );
        assert_eq!(
            MediaFrame::parse(
                r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
            ),
            Ok(MediaFrame::Stop {
                stream_sid: "MZ1".into(),
                call_sid: Some("CA1".into())
            })
        );
        assert_eq!(
            MediaFrame::parse(r#"{"event":"transcription","streamSid":"MZ1"}"#),
            Ok(MediaFrame::Unknown {
                event: "transcription".into()
            })
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(MediaFrame::parse("not json"), Err(FrameError::NotJson));
        assert_eq!(MediaFrame::parse("[1,2]"), Err(FrameError::NotJson));
        assert_eq!(
            MediaFrame::parse(r#"{"streamSid":"MZ1"}"#),
            Err(FrameError::NoEvent)
        );
        assert_eq!(
            MediaFrame::parse(r#"{"event":"media","streamSid":"MZ1","media":{"payload":"***"}}"#),
            Err(FrameError::BadPayload)
        );
        assert_eq!(
            MediaFrame::parse(r#"{"event":"media","media":{"payload":""}}"#),
            Err(FrameError::NoStreamSid("media"))
        );
    }

    #[test]
    fn a_stream_sid_that_needs_escaping_is_escaped() {
        let json = Outbound::Media {
            stream_sid: "MZ\"1\\é\n",
            audio: &[9],
        }
        .to_json();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["streamSid"], "MZ\"1\\é\n");
        assert_eq!(v["media"]["payload"], "CQ==");
    }

    #[test]
    fn outbound_frames_are_the_three_allowed_ones() {
        assert_eq!(
            Outbound::Media {
                stream_sid: "MZ1",
                audio: &[0, 1, 2]
            }
            .to_json(),
            r#"{"event":"media","media":{"payload":"AAEC"},"streamSid":"MZ1"}"#
        );
        assert_eq!(
            Outbound::Mark {
                stream_sid: "MZ1",
                name: "turn-1"
            }
            .to_json(),
            r#"{"event":"mark","mark":{"name":"turn-1"},"streamSid":"MZ1"}"#
        );
        assert_eq!(
            Outbound::Clear { stream_sid: "MZ1" }.to_json(),
            r#"{"event":"clear","streamSid":"MZ1"}"#
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        #[test]
        fn no_frame_panics_the_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..65_536)) {
            let _ = MediaFrame::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn no_media_shape_panics(payload in "\\PC{0,400}", event in "(media|start|stop|dtmf|mark|x)") {
            let frame = serde_json::json!({"event": event, "streamSid": "MZ", "media": {"payload": payload},
                "start": {"customParameters": {"a": payload}}, "dtmf": {"digit": payload}}).to_string();
            let _ = MediaFrame::parse(&frame);
        }
    }
}
