//! The developer subcommands: `verify-signature` (why a signature does or does not match) and
//! `simulate` (a whole call played as Twilio would, signed).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Settings;
use crate::domain::CallSid;
use crate::secrets::EnvSource;
use crate::store::{AnyStore, Store as _};
use crate::twilio::signature::{self, SignatureError};
use crate::twilio::twiml;

/// What `verify-signature` checks.
#[derive(Debug, Clone)]
pub enum SignedBody {
    /// `--param NAME=VALUE`, taken literally.
    Params(Vec<(String, String)>),
    /// `--form-body`, urlencoded.
    Form(String),
    /// `--json-body-file`: the raw bytes, checked against `bodySHA256`.
    Json(Vec<u8>),
}

/// The verdict of `verify-signature`: the text to print and the exit status (0 valid, 1 not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    pub report: String,
}

/// Explains why `signature` does or does not match. The token is never printed.
pub fn verify_signature(token: &str, url: &str, body: &SignedBody, sig: &str) -> Verification {
    let params: Vec<(String, String)> = match body {
        SignedBody::Params(p) => p.clone(),
        SignedBody::Form(form) => url::form_urlencoded::parse(form.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        SignedBody::Json(_) => Vec::new(),
    };
    let result = match body {
        SignedBody::Json(bytes) => signature::verify_body(token, url, bytes, Some(sig)),
        _ => signature::verify_form(token, url, &params, Some(sig)),
    };
    let mut report = String::new();
    match result {
        Ok(variant) => {
            let matched = signature::url_variants(url)
                .into_iter()
                .find(|(v, _)| *v == variant)
                .map(|(_, u)| u)
                .unwrap_or_default();
            let _ = writeln!(
                report,
                "valid: the signature matches {} ({matched})",
                variant.describe()
            );
            Verification {
                valid: true,
                report,
            }
        }
        Err(error) => {
            let _ = writeln!(report, "invalid: {error}");
            if let (
                SignedBody::Json(bytes),
                SignatureError::BodyHashMismatch | SignatureError::NoBodyHash,
            ) = (body, error)
            {
                let _ = writeln!(
                    report,
                    "  body SHA-256: {} (bodySHA256 in the URL: {})",
                    signature::body_sha256(bytes),
                    signature::body_hash_param(url).unwrap_or_else(|| "absent".to_owned())
                );
            }
            for (variant, candidate) in signature::url_variants(url) {
                let data = signature::signed_data(&candidate, &params);
                let _ = writeln!(report, "  tried {}:", variant.describe());
                let _ = writeln!(report, "    url:           {candidate}");
                let _ = writeln!(report, "    signed string: {data}");
                let _ = writeln!(
                    report,
                    "    expected:      {}",
                    signature::sign(token, &data)
                );
            }
            let _ = writeln!(report, "  received:        {sig}");
            let _ = writeln!(
                report,
                "hint: the URL must be exactly what Twilio requested (PUBLIC_BASE_URL + path and query, host case kept)"
            );
            Verification {
                valid: false,
                report,
            }
        }
    }
}

/// A scripted caller for `simulate`.
#[derive(Debug, Clone)]
pub struct Script {
    pub from: String,
    pub answers: Vec<String>,
}

impl Script {
    pub fn french() -> Self {
        Self {
            from: "+15145550199".to_owned(),
            answers: [
                "euh bonjour je m'appelle Marie-Ève Côté",
                "oui c'est ça",
                "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
                "j'ai un arbre tombé sur le toit après la tempête",
                "un gros érable a cassé, il bloque l'entrée",
                "oui c'est urgent",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    pub fn english() -> Self {
        Self {
            from: "+14165550142".to_owned(),
            answers: [
                "hi, my name is John Smith",
                "yes",
                "55 Maple Street, Westmount",
                "I need a stump removed",
                "an old oak stump in the back yard",
                "no, it can wait",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    /// One answer per line; blank lines are silences.
    pub fn from_file(path: &std::path::Path, from: &str) -> std::io::Result<Self> {
        Ok(Self {
            from: from.to_owned(),
            answers: std::fs::read_to_string(path)?
                .lines()
                .map(|l| l.trim().to_owned())
                .collect(),
        })
    }
}

/// `simulate` options.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Where the gateway listens (`http://127.0.0.1:8080`).
    pub base_url: String,
    /// The URL Twilio would sign (`PUBLIC_BASE_URL`); defaults to `base_url`.
    pub public_url: Option<String>,
    pub script: Script,
    /// The database to read the stored lead from (the gateway's `DATABASE_PATH`).
    pub database: Option<PathBuf>,
    /// How a transfer ends: Twilio's `DialCallStatus` (`no-answer`, `busy`, `failed`, `completed`).
    pub dial_status: String,
}

/// Twilio as the gateway sees it: signed form posts.
struct FakeTwilio {
    client: reqwest::Client,
    token: Option<String>,
    base: String,
    public: String,
    call_sid: String,
    account: String,
}

impl FakeTwilio {
    fn params(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = vec![
            ("CallSid".to_owned(), self.call_sid.clone()),
            ("AccountSid".to_owned(), self.account.clone()),
        ];
        p.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        p
    }

    async fn post(&self, target: &str, extra: &[(&str, &str)]) -> anyhow::Result<String> {
        let params = self.params(extra);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let mut request = self
            .client
            .post(format!("{}{target}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = &self.token {
            let signed_url = format!("{}{target}", self.public);
            request = request.header(
                "x-twilio-signature",
                signature::sign(token, &signature::signed_data(&signed_url, &params)),
            );
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{target} answered {status}: {}",
            text.trim()
        );
        Ok(text)
    }
}

/// The stored lead of the call, read through the same store configuration as the gateway.
async fn stored_lead(
    source: &EnvSource,
    database: Option<&std::path::Path>,
    call_sid: &str,
) -> anyhow::Result<String> {
    let mut pairs = vec![("ENVIRONMENT".to_owned(), "development".to_owned())];
    for name in [
        "STORE",
        "DATABASE_PATH",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SCHEMA",
    ] {
        if let Some(v) = source.get(name) {
            pairs.push((name.to_owned(), v.to_owned()));
        }
    }
    if let Some(db) = database {
        pairs.push(("DATABASE_PATH".to_owned(), db.display().to_string()));
    }
    let settings = Settings::from_source(&EnvSource::from_pairs(pairs))?;
    let store = AnyStore::open(&settings)?;
    let sid = CallSid::try_from(call_sid)?;
    Ok(match store.find_lead_by_call(&sid).await? {
        Some(lead) => format!(
            "\nstored lead ({} store):\n{}\n",
            store.kind(),
            serde_json::to_string_pretty(&lead.data())?
        ),
        None => format!(
            "\nno lead found for {call_sid} in the {} store\n",
            store.kind()
        ),
    })
}

/// The key `simulate` signs with, and how to say so: `TWILIO_AUTH_TOKEN` (when usable), else the development key
/// a development gateway using the same database directory generated (see [`crate::dev_token`]),
/// else none (unsigned).
fn signing_key(
    source: &EnvSource,
    database: Option<&std::path::Path>,
) -> anyhow::Result<(Option<String>, String)> {
    // Judged as the gateway judges it: a placeholder (`.env.example`'s) or malformed value is
    // ignored in development, so the gateway is using its development key.
    let check = crate::secrets::check_var(
        crate::secrets::spec("TWILIO_AUTH_TOKEN"),
        source,
        crate::environment::Environment::Development,
        &crate::secrets::Skips::none(),
    );
    if check.status == crate::secrets::Status::Present {
        if let Some(token) = source.get("TWILIO_AUTH_TOKEN") {
            return Ok((
                Some(token.trim().to_owned()),
                "signed with TWILIO_AUTH_TOKEN".to_owned(),
            ));
        }
    }
    let database = database.map_or_else(
        || {
            std::path::PathBuf::from(
                source
                    .get("DATABASE_PATH")
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or("data/myriam.db"),
            )
        },
        std::path::Path::to_path_buf,
    );
    let path = crate::dev_token::path_for(&database);
    Ok(match crate::dev_token::read(&path)? {
        Some(key) => (
            Some(key),
            format!("signed with the development key in {}", path.display()),
        ),
        None => (None, "unsigned".to_owned()),
    })
}

/// What `simulate` already played of a hand-off to people.
#[derive(Debug, Default)]
struct HandOffPlayed {
    dialled: bool,
    recorded: bool,
}

/// Twilio's side of a transfer (`<Dial>`: it ends as `dial_status` says) or a voicemail
/// (`<Record>`: a message is left): the next TwiML, or `None` when the call is over.
async fn hand_off_step(
    twilio: &FakeTwilio,
    twiml: &str,
    dial_status: &str,
    played: &mut HandOffPlayed,
    out: &mut String,
) -> anyhow::Result<Option<String>> {
    if twiml.contains("<Dial") && !played.dialled {
        played.dialled = true;
        let (what, duration) = match dial_status {
            "completed" => (
                "someone answers and talks with the caller for a minute",
                "60",
            ),
            "busy" => ("the line is busy", "0"),
            "failed" => ("the call cannot go through", "0"),
            _ => ("nobody answers within the ring time", "0"),
        };
        let _ = writeln!(out, "(Twilio rings the office line; {what})");
        let next = twilio
            .post(
                "/twilio/dial-done",
                &[
                    ("DialCallStatus", dial_status),
                    ("DialCallDuration", duration),
                ],
            )
            .await?;
        return Ok(Some(next));
    }
    if twiml.contains("<Record") && !played.recorded {
        played.recorded = true;
        let _ = writeln!(
            out,
            "(beep: the caller leaves a 12-second message, then hangs up)"
        );
        let recording = [
            ("RecordingSid", "RE00000000000000000000000000000000"),
            (
                "RecordingUrl",
                "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Recordings/RE00000000000000000000000000000000",
            ),
            ("RecordingDuration", "12"),
        ];
        let next = twilio.post("/twilio/voicemail", &recording).await?;
        let mut status = recording.to_vec();
        status.push(("RecordingStatus", "completed"));
        twilio.post("/twilio/recording-status", &status).await?;
        return Ok(Some(next));
    }
    Ok(None)
}

/// Plays a whole call against a running gateway, as Twilio would, and returns the dialogue and the
/// stored lead.
pub async fn simulate(sim: &Simulation) -> anyhow::Result<String> {
    let source = EnvSource::load(std::path::Path::new(".env"), false)?;
    let base = sim.base_url.trim_end_matches('/').to_owned();
    let (token, signed_with) = signing_key(&source, sim.database.as_deref())?;
    let twilio = FakeTwilio {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?,
        token,
        public: sim
            .public_url
            .as_deref()
            .unwrap_or(&base)
            .trim_end_matches('/')
            .to_owned(),
        base,
        call_sid: format!("CA{}", uuid::Uuid::new_v4().simple()),
        account: source
            .get("TWILIO_ACCOUNT_SID")
            .unwrap_or("AC00000000000000000000000000000000")
            .to_owned(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulated call {} from {} ({})",
        twilio.call_sid, sim.script.from, signed_with
    );
    let mut twiml = twilio
        .post(
            "/twilio/voice",
            &[
                ("From", &sim.script.from),
                ("To", "+14505550100"),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
            ],
        )
        .await?;
    let mut answers = sim.script.answers.iter();
    let mut handed = HandOffPlayed::default();
    loop {
        // What is said before a `<Record>` is heard before the beep; the rest after it.
        let before_beep = twiml.split("<Record").next().unwrap_or_default();
        for line in twiml::spoken_lines(before_beep) {
            let _ = writeln!(out, "Myriam: {line}");
        }
        let Some(action) = twiml::gather_action(&twiml) else {
            // A caller handed to people: play Twilio's side of the transfer and the voicemail.
            match hand_off_step(&twilio, &twiml, &sim.dial_status, &mut handed, &mut out).await? {
                Some(next) => {
                    twiml = next;
                    continue;
                }
                None => break,
            }
        };
        let target = action
            .strip_prefix(&twilio.public)
            .map_or_else(|| action.clone(), str::to_owned);
        let Some(answer) = answers.next() else {
            let _ = writeln!(out, "(the script ran out of answers; hanging up)");
            break;
        };
        let _ = writeln!(
            out,
            "Caller: {}",
            if answer.is_empty() {
                "(silence)"
            } else {
                answer
            }
        );
        twiml = twilio
            .post(&target, &[("SpeechResult", answer), ("Confidence", "0.9")])
            .await?;
    }
    twilio
        .post(
            "/twilio/status",
            &[
                ("CallStatus", "completed"),
                ("CallDuration", "120"),
                ("SequenceNumber", "9"),
            ],
        )
        .await?;
    out.push_str(&stored_lead(&source, sim.database.as_deref(), &twilio.call_sid).await?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_signature_explains_both_outcomes_without_the_token() {
        let token = "12345";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = SignedBody::Params(vec![
            ("CallSid".into(), "CA1234567890ABCDE".into()),
            ("Caller".into(), "+14158675310".into()),
            ("Digits".into(), "1234".into()),
            ("From".into(), "+14158675310".into()),
            ("To".into(), "+18005551212".into()),
        ]);
        let ok = verify_signature(token, url, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert!(ok.valid);
        assert_eq!(
            ok.report,
            "valid: the signature matches the URL as received (https://mycompany.com/myapp.php?foo=1&bar=2)\n"
        );
        let bad = verify_signature(token, url, &params, "AAAA");
        assert!(!bad.valid);
        assert!(
            bad.report
                .contains("tried the URL with the default port added:")
        );
        assert!(
            bad.report
                .contains("url:           https://mycompany.com:443/myapp.php?foo=1&bar=2")
        );
        assert!(bad.report.contains(
            "signed string: https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675310Digits1234From+14158675310To+18005551212"
        ));
        assert!(!bad.report.contains("12345\n") && !bad.report.contains(" 12345"));
    }

    #[test]
    fn form_bodies_and_json_bodies() {
        let token = "tok";
        let url = "https://h/twilio/voice";
        let form = "CallSid=CA1&SpeechResult=%C3%A9lagage+d%27un+arbre";
        let sig = signature::sign(
            token,
            &signature::signed_data(
                url,
                &[
                    ("CallSid".into(), "CA1".into()),
                    ("SpeechResult".into(), "élagage d'un arbre".into()),
                ],
            ),
        );
        assert!(verify_signature(token, url, &SignedBody::Form(form.into()), &sig).valid);
        let body = br#"{"a":1}"#.to_vec();
        let json_url = format!(
            "https://h/events?bodySHA256={}",
            signature::body_sha256(&body)
        );
        let json_sig = signature::sign(token, &json_url);
        assert!(
            verify_signature(token, &json_url, &SignedBody::Json(body.clone()), &json_sig).valid
        );
        let tampered = verify_signature(
            token,
            &json_url,
            &SignedBody::Json(b"{}".to_vec()),
            &json_sig,
        );
        assert!(!tampered.valid);
        assert!(
            tampered.report.contains("body SHA-256:"),
            "{}",
            tampered.report
        );
    }
}
