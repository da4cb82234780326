//! The caller's name: lead-ins (« je m'appelle », « c'est ») and trailers stripped, stutters
//! removed, capitalised the way Québec names are written.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{MAX_NAME_CHARS, Rejection, capitalise_word, dedupe_stutter, raw_words, strip_affixes};
use crate::text::fold;

/// Words before the answer itself, longest first so `moi c'est` wins over `c'est`.
const NAME_LEAD_INS: &[&str] = &[
    "bonjour",
    "allo",
    "oui",
    "hi",
    "hello",
    "yes",
    "je m'appelle",
    "je m appelle",
    "je me nomme",
    "mon nom c'est",
    "mon nom est",
    "mon nom complet c'est",
    "mon nom complet est",
    "moi c'est",
    "c'est",
    "ici",
    "my name is",
    "my name's",
    "my full name is",
    "the name is",
    "name's",
    "it's",
    "it is",
    "this is",
    "i'm",
    "i am",
    "le nom c'est",
];

pub(super) const NAME_TRAILERS: &[&str] = &[
    "merci",
    "merci beaucoup",
    "voila",
    "c'est tout",
    "thanks",
    "thank you",
    "s'il vous plait",
    "please",
];

/// Answers that are not names, whatever the step.
const NOT_NAMES: &[&str] = &[
    "oui", "non", "yes", "no", "ok", "okay", "pardon", "quoi", "what", "sorry", "allo", "hello",
    "bonjour", "merci", "thanks", "comment", "je", "sais", "pas", "know", "don't", "i", "repeat",
    "repeter", "rien",
];

/// Particles kept lowercase inside a name (`Jean de la Fontaine`).
const PARTICLES: &[&str] = &[
    "de", "du", "des", "la", "le", "van", "von", "der", "da", "di",
];

/// A caller's full name, trimmed and capitalised: `Marie-Ève Côté`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name read back from storage, kept as stored (it was parsed when it was first said).
    pub fn from_stored(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty() && text.chars().count() <= MAX_NAME_CHARS).then(|| Self(text.to_owned()))
    }

    /// The first word, for a friendly "Merci, Marie-Ève".
    pub fn first(&self) -> &str {
        self.0.split(' ').next().unwrap_or(&self.0)
    }
}

impl TryFrom<&str> for PersonName {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        if super::asks_for_person(input) {
            // « je veux parler à quelqu'un » is a request, not a person named "Je".
            return Err(Rejection::NotAName);
        }
        let words = strip_affixes(raw_words(input), NAME_LEAD_INS, NAME_TRAILERS);
        let words = dedupe_stutter(words);
        if words.is_empty() {
            return Err(Rejection::Empty);
        }
        let joined = words.join(" ");
        if joined
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_whitespace() || c == '-')
        {
            return Err(Rejection::Digits);
        }
        if joined.chars().count() > MAX_NAME_CHARS {
            return Err(Rejection::TooLong);
        }
        if joined.chars().any(|c| c.is_ascii_digit())
            || !joined.chars().any(char::is_alphabetic)
            || words.len() > 6
            || words.iter().all(|w| NOT_NAMES.contains(&fold(w).as_str()))
            || joined
                .chars()
                .any(|c| !(c.is_alphabetic() || c == ' ' || c == '-' || c == '\'' || c == '’'))
        {
            return Err(Rejection::NotAName);
        }
        let name = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let w = w.replace('’', "'");
                if i > 0 && PARTICLES.contains(&fold(&w).as_str()) {
                    w.to_lowercase()
                } else {
                    capitalise_word(&w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Self(name))
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
