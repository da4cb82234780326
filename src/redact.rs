//! Redaction of callers' personal data, in one place.
//!
//! Callers give Myriam their name, phone number and home address. Anything that leaves the process
//! as text — log lines, Sentry events, error messages — goes through this module:
//!
//! - [`phone`] masks a phone number and keeps its last two digits (`+1 514 555 0142` → `•••42`);
//! - [`text`] masks a free-text value known to be personal (a name, an answer, a transcript) whole,
//!   keeping only its length;
//! - [`scrub`] cleans text of unknown origin (an error message, a panic message, a breadcrumb):
//!   digit runs that could be phone numbers, Canadian postal codes, civic addresses and e-mail
//!   addresses are masked wherever they appear.
//!
//! Log call sites use the [`Phone`] and [`Personal`] wrappers as structured fields
//! (`tracing::info!(from = %redact::Phone(from), …)`), so the decision is made here, once.
//! `LOG_PII=1` (refused in production by [`crate::config`]) turns masking off for local debugging;
//! [`scrub`] is not affected by it when it runs inside Sentry's `before_send`, which always scrubs.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOW_PII: AtomicBool = AtomicBool::new(false);

/// Turns masking of log fields off (`LOG_PII=1`). Only [`crate::config`] decides to call this, and it
/// refuses to in production.
pub fn show_personal_data_in_logs(show: bool) {
    SHOW_PII.store(show, Ordering::Relaxed);
}

fn showing() -> bool {
    SHOW_PII.load(Ordering::Relaxed)
}

/// A phone number masked to its last two digits: `•••42`; `•••` when it has fewer than four digits.
pub fn phone(value: &str) -> String {
    let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return "•••".to_owned();
    }
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("•••{tail}")
}

/// A personal free-text value masked whole: `[8 chars]`.
pub fn text(value: &str) -> String {
    format!("[{} chars]", value.chars().count())
}

/// A phone number as a log field: masked unless `LOG_PII=1`.
#[derive(Clone, Copy)]
pub struct Phone<'a>(pub &'a str);

impl fmt::Display for Phone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if showing() {
            f.write_str(self.0)
        } else {
            f.write_str(&phone(self.0))
        }
    }
}

impl fmt::Debug for Phone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A personal text value (name, address, answer, transcript) as a log field: masked unless
/// `LOG_PII=1`.
#[derive(Clone, Copy)]
pub struct Personal<'a>(pub &'a str);

impl fmt::Display for Personal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if showing() {
            f.write_str(self.0)
        } else {
            f.write_str(&text(self.0))
        }
    }
}

impl fmt::Debug for Personal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Field names whose values are personal wherever they appear (Twilio form fields, Vapi payload
/// keys, lead columns, our own log fields). Matched case-insensitively, ignoring `_` and `-`.
pub const PERSONAL_KEYS: &[&str] = &[
    "from",
    "to",
    "caller",
    "called",
    "callername",
    "fromcity",
    "fromzip",
    "tocity",
    "tozip",
    "speechresult",
    "digits",
    "transcript",
    "summary",
    "messages",
    "reponse",
    "answer",
    "input",
    "name",
    "nom",
    "fullname",
    "phone",
    "phonenumber",
    "telephone",
    "customer",
    "number",
    "address",
    "adresse",
    "postalcode",
    "description",
    "leaddata",
    "variablevalues",
    "callernumber",
    "body",
    "data",
    "content",
];

/// Whether a field called `key` holds personal data.
pub fn is_personal_key(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    PERSONAL_KEYS.contains(&folded.as_str())
}

/// Street words (French and English) that follow a civic number in an address.
const STREET_WORDS: &[&str] = &[
    "rue",
    "avenue",
    "av",
    "ave",
    "boulevard",
    "boul",
    "blvd",
    "chemin",
    "ch",
    "route",
    "rang",
    "place",
    "montée",
    "montee",
    "côte",
    "cote",
    "croissant",
    "impasse",
    "allée",
    "allee",
    "terrasse",
    "promenade",
    "street",
    "st",
    "road",
    "rd",
    "drive",
    "dr",
    "lane",
    "court",
    "crescent",
    "way",
    "saint",
    "sainte",
    "st-",
];

fn is_postal_code_at(chars: &[char], i: usize) -> Option<usize> {
    // A1A 1A1, A1A1A1 or A1A-1A1 (letters either case), not inside a longer word.
    let letter = |c: char| c.is_ascii_alphabetic();
    let digit = |c: char| c.is_ascii_digit();
    if i > 0 && chars[i - 1].is_alphanumeric() {
        return None;
    }
    let get = |k: usize| chars.get(k).copied();
    let mut k = i;
    let first = [letter, digit, letter];
    for check in first {
        if !get(k).is_some_and(check) {
            return None;
        }
        k += 1;
    }
    if matches!(get(k), Some(' ' | '-')) {
        k += 1;
    }
    let second = [digit, letter, digit];
    for check in second {
        if !get(k).is_some_and(check) {
            return None;
        }
        k += 1;
    }
    if get(k).is_some_and(char::is_alphanumeric) {
        return None;
    }
    Some(k)
}

/// The shortest digit run treated as a phone number: a local number without its area code.
const MIN_PHONE_DIGITS: usize = 7;

/// Cleans text of unknown origin: phone-like digit runs (≥ 7 digits, separators allowed) keep their
/// last two digits, postal codes, civic addresses (a number followed by a street word) and e-mail
/// addresses are masked. Returns the input unchanged (borrowed) when there is nothing to mask.
pub fn scrub(input: &str) -> Cow<'_, str> {
    if !needs_scrub(input) {
        return Cow::Borrowed(input);
    }
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = is_postal_code_at(&chars, i) {
            out.push_str("[postal code]");
            i = end;
            continue;
        }
        if chars[i].is_ascii_digit() && !continues_token(&chars, i) {
            // A run of digits with phone separators in between.
            let mut k = i;
            let mut digits = String::new();
            let mut last_digit_end = i;
            while k < chars.len() {
                let c = chars[k];
                if c.is_ascii_digit() {
                    digits.push(c);
                    last_digit_end = k + 1;
                } else if !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+') {
                    break;
                }
                k += 1;
            }
            if digits.len() >= MIN_PHONE_DIGITS && !token_follows(&chars, last_digit_end) {
                if out.ends_with('+') {
                    out.pop();
                }
                out.push_str(&phone(&digits));
                i = last_digit_end;
                continue;
            }
            // A civic number followed by a street word: mask the number and the next words.
            let number_end = i + chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let rest: String = chars[number_end..].iter().take(60).collect();
            // "1234 rue Sherbrooke", "1234, boulevard …", "42 Maple Street": a street word within
            // the next four words.
            let street_follows = rest
                .split(|c: char| !c.is_alphanumeric() && c != '-')
                .filter(|w| !w.is_empty())
                .take(4)
                .any(|w| STREET_WORDS.contains(&w.to_lowercase().as_str()));
            if street_follows {
                out.push_str("[address]");
                // Skip up to the end of the line or the next comma-separated field.
                let mut k = number_end;
                while k < chars.len() && !matches!(chars[k], '\n' | ';' | '"' | '}') {
                    k += 1;
                }
                i = k;
                continue;
            }
            out.extend(&chars[i..number_end]);
            i = number_end;
            continue;
        }
        if chars[i] == '@' {
            // user@host: drop the local part already written and the domain.
            while out
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
            {
                out.pop();
            }
            out.push_str("[email]");
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '.' | '-')) {
                i += 1;
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Whether the character at `i` is inside an identifier (a UUID, a CallSid, `abc-123…`) rather
/// than at the start of a number: right after a letter or digit, or after a `-` that follows one.
fn continues_token(chars: &[char], i: usize) -> bool {
    match i.checked_sub(1).map(|p| chars[p]) {
        None => false,
        Some('-') => i >= 2 && chars[i - 2].is_alphanumeric(),
        Some(c) => c.is_alphanumeric(),
    }
}

/// Whether an identifier goes on at `end` (the first character after a digit run): a letter, or a
/// `-` joined to a letter or digit.
fn token_follows(chars: &[char], end: usize) -> bool {
    match chars.get(end) {
        Some('-') => chars.get(end + 1).is_some_and(|c| c.is_alphanumeric()),
        Some(c) => c.is_alphabetic(),
        None => false,
    }
}

fn needs_scrub(input: &str) -> bool {
    input.bytes().any(|b| b.is_ascii_digit() || b == b'@')
}

/// Scrubs every string inside a JSON value; values under personal keys are masked whole.
pub fn scrub_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = scrub(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_personal_key(key) && !item.is_null() {
                    *item = Value::String(mask_value(item));
                } else {
                    scrub_json(item);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn mask_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => text(s),
        other => format!("[{} redacted]", kind(other)),
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phones_keep_their_last_two_digits() {
        assert_eq!(phone("+15145550142"), "•••42");
        assert_eq!(phone("(514) 555-0142"), "•••42");
        assert_eq!(phone("12"), "•••");
        assert_eq!(phone(""), "•••");
    }

    #[test]
    fn personal_text_keeps_only_its_length() {
        assert_eq!(text("Jean Tremblay"), "[13 chars]");
        assert_eq!(Personal("Jean").to_string(), "[4 chars]");
        assert_eq!(Phone("+15145550142").to_string(), "•••42");
    }

    #[test]
    fn scrub_masks_phones_postal_codes_addresses_and_emails() {
        let cases = [
            ("appelez le 514-555-0142 svp", "appelez le •••42 svp"),
            ("call +1 (514) 555 0142.", "call •••42."),
            ("code H2X 1Y4 merci", "code [postal code] merci"),
            ("code h2x1y4", "code [postal code]"),
            (
                "j'habite au 1234 rue Sherbrooke Est",
                "j'habite au [address]",
            ),
            ("1234, boulevard Saint-Laurent", "[address]"),
            ("42 Maple Street", "[address]"),
            ("écrivez à jean.tremblay@example.com.", "écrivez à [email]"),
            ("\"from\":\"+15145550142\"", "\"from\":\"•••42\""),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input), expected, "{input}");
        }
    }

    #[test]
    fn scrub_leaves_ordinary_text_and_small_numbers_alone() {
        for input in [
            "status 503 after 2 attempts",
            "turn 3 of 6",
            "PostgREST returned 42501: permission denied for table leads",
            "Vapi answered 429",
            "no digits at all",
            "lead 08b1e9d2-4361-4b9a-9a5e-dcfcd2555e8f",
            "lead 12345678-1234-4234-8234-123456789abc",
            "CallSid CA0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(scrub(input), input);
        }
    }

    #[test]
    fn json_values_under_personal_keys_are_masked_whole() {
        let mut v = serde_json::json!({
            "From": "+15145550142",
            "lead_data": {"nom": "Jean Tremblay"},
            "route": "/twilio/gather",
            "error": "timeout calling 514 555 0142",
            "attempt": 2
        });
        scrub_json(&mut v);
        assert_eq!(v["From"], "[12 chars]");
        assert_eq!(v["lead_data"], "[object redacted]");
        assert_eq!(v["route"], "/twilio/gather");
        assert_eq!(v["error"], "timeout calling •••42");
        assert_eq!(v["attempt"], 2);
    }

    #[test]
    fn personal_keys_match_loosely() {
        for key in [
            "From",
            "SpeechResult",
            "speech_result",
            "caller-name",
            "lead_data",
        ] {
            assert!(is_personal_key(key), "{key}");
        }
        for key in ["route", "CallSid", "lead_id", "status", "reason"] {
            assert!(!is_personal_key(key), "{key}");
        }
    }

    proptest! {
        #[test]
        fn scrub_never_panics_and_is_stable(input in any::<String>()) {
            let once = scrub(&input).into_owned();
            // Scrubbing what was already scrubbed changes nothing more.
            prop_assert_eq!(scrub(&once), once.as_str());
        }

        #[test]
        fn scrub_leaves_identifiers_alone(n in any::<u128>()) {
            let id = uuid::Uuid::from_u128(n).to_string();
            let line = format!("lead {id} call CA{n:032x}");
            prop_assert_eq!(scrub(&line), line.as_str());
        }

        #[test]
        fn scrub_masks_any_planted_phone(prefix in "[a-z ]{0,20}", n in 2_000_000_000u64..9_999_999_999, suffix in "[a-z ]{0,20}") {
            let input = format!("{prefix} {n} {suffix}");
            let out = scrub(&input);
            prop_assert!(!out.contains(&n.to_string()));
        }
    }
}
