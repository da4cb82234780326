//! The service address: a civic number and a street, or a Canadian postal code.

use serde::{Deserialize, Serialize};

use super::common::{Rejection, strip_affixes};
use super::name::NAME_TRAILERS;
use crate::text::fold;

/// Drops a word repeated right after itself (ASR's stutter), unless a comma sits between them:
/// « 345 chemin du Lac-Bouchette, Lac-Bouchette » names the street, then the town.
fn dedupe_stutter(words: Vec<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for w in words {
        if out
            .last()
            .is_some_and(|last| !last.ends_with(',') && fold(last) == fold(w))
        {
            continue;
        }
        out.push(w);
    }
    out
}

/// A Canadian postal code, `H2X 1Y4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PostalCode(String);

impl PostalCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Finds a postal code in free text, spaced or spelled (`h 2 x 1 y 4`, `H2X-1Y4`). Returns the
    /// code and the byte range it covered in `input`.
    pub fn find(input: &str) -> Option<(Self, std::ops::Range<usize>)> {
        // Alphanumeric characters with their byte offsets, separators skipped.
        let chars: Vec<(usize, char)> = input
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphanumeric())
            .collect();
        let first_letter = |c: char| "ABCEGHJKLMNPRSTVXY".contains(c);
        let letter = |c: char| "ABCEGHJKLMNPRSTVWXYZ".contains(c);
        for start in 0..chars.len().saturating_sub(5) {
            let window: Vec<char> = chars[start..start + 6]
                .iter()
                .map(|(_, c)| c.to_ascii_uppercase())
                .collect();
            let shape_ok = first_letter(window[0])
                && window[1].is_ascii_digit()
                && letter(window[2])
                && window[3].is_ascii_digit()
                && letter(window[4])
                && window[5].is_ascii_digit();
            if !shape_ok {
                continue;
            }
            // Only separators (spaces, hyphens) may sit between the six characters.
            let begin = chars[start].0;
            let end = chars[start + 5].0 + 1;
            if !input[begin..end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
            {
                continue;
            }
            // Not glued to a longer word on either side.
            let before_ok = input[..begin]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            let after_ok = input[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            if before_ok && after_ok {
                let code: String = window.iter().collect();
                return Some((Self(format!("{} {}", &code[..3], &code[3..])), begin..end));
            }
        }
        None
    }
}

const ADDRESS_LEAD_INS: &[&str] = &[
    "c'est au",
    "c'est le",
    "c'est",
    "j'habite au",
    "j'habite",
    "j habite au",
    "je reste au",
    "mon adresse c'est le",
    "mon adresse c'est",
    "mon adresse est le",
    "mon adresse est",
    "l'adresse c'est",
    "l'adresse est",
    "au",
    "my address is",
    "the address is",
    "it's",
    "i live at",
    "it's at",
    "oui",
    "yes",
];

/// A service address as spoken, with its postal code normalised when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    text: String,
    civic_number: Option<String>,
    postal_code: Option<PostalCode>,
}

impl Address {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn civic_number(&self) -> Option<&str> {
        self.civic_number.as_deref()
    }

    pub fn postal_code(&self) -> Option<&PostalCode> {
        self.postal_code.as_ref()
    }

    /// An address read back from storage: kept as stored, its parts found again when possible.
    pub fn from_stored(text: &str) -> Self {
        Self::try_from(text).unwrap_or_else(|_| Self {
            text: text.trim().to_owned(),
            civic_number: None,
            postal_code: None,
        })
    }
}

/// Leading civic number: `123`, `123A`, `2-123`, `123-B` (or spoken words turned into digits by
/// the caller's ASR; we do not convert words here).
fn civic_number(first: &str) -> Option<String> {
    let t = first.trim_end_matches(',');
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let ok = (1..=6).contains(&digits)
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && t.chars().filter(char::is_ascii_alphabetic).count() <= 1;
    ok.then(|| t.to_owned())
}

impl TryFrom<&str> for Address {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        if super::person::asks_for_person(input) {
            return Err(Rejection::NoAddress);
        }
        let words = strip_affixes(
            input.split_whitespace().collect(),
            ADDRESS_LEAD_INS,
            NAME_TRAILERS,
        );
        let words = dedupe_stutter(words);
        if words.is_empty() {
            return Err(Rejection::Empty);
        }
        let mut text = words.join(" ");
        let mut postal_code = None;
        if let Some((code, range)) = PostalCode::find(&text) {
            text.replace_range(range, code.as_str());
            postal_code = Some(code);
        }
        let text = text
            .trim_matches(|c: char| c == ',' || c == '.' || c.is_whitespace())
            .to_owned();
        let civic = words.first().and_then(|w| civic_number(w));
        let has_street = words
            .iter()
            .skip(1)
            .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2);
        let civic_and_street = civic.is_some() && has_street;
        if !(civic_and_street || postal_code.is_some()) {
            return Err(Rejection::NoAddress);
        }
        if text.chars().count() > 300 {
            return Err(Rejection::TooLong);
        }
        Ok(Self {
            text,
            civic_number: civic.filter(|_| civic_and_street),
            postal_code,
        })
    }
}
