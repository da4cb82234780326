//! The caller's name: lead-ins (« je m'appelle », « c'est ») and trailers stripped, stutters
//! removed, capitalised the way Québec names are written.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::common::{
    MAX_NAME_CHARS, Rejection, capitalise_word, dedupe_stutter, raw_words, strip_affixes,
};
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

    /// A first name alone (« Martin »): Myriam asks for the family name.
    pub fn is_first_name_only(&self) -> bool {
        !self.0.contains(' ')
    }

    /// This first name followed by `family` (« Martin » + « Dubé »).
    #[must_use]
    pub fn with_family_name(&self, family: &PersonName) -> PersonName {
        Self(format!("{} {}", self.0, family.0))
    }

    /// This name with its first name replaced by `first` (« Julien Roy » → « Julie Roy »).
    #[must_use]
    pub fn with_first_name(&self, first: &PersonName) -> PersonName {
        match self.0.split_once(' ') {
            Some((_, family)) => Self(format!("{} {family}", first.0)),
            None => first.clone(),
        }
    }
}

/// « Tremblay, Julie »: the family name first, then a comma and the first name. Returns the name
/// turned around (« Julie Tremblay »), lead-ins kept in front.
fn family_name_first(input: &str) -> Option<String> {
    let (before, after) = input.split_once(',')?;
    let after = after.trim().trim_end_matches(['.', '!']);
    let after_words: Vec<&str> = after.split_whitespace().collect();
    let before_words = strip_affixes(raw_words(before), NAME_LEAD_INS, NAME_TRAILERS);
    let plain = |w: &&str| {
        let f = fold(w);
        w.chars()
            .all(|c| c.is_alphabetic() || c == '-' || c == '\'' || c == '’')
            && !NOT_NAMES.contains(&f.as_str())
            && !NAME_TRAILERS.contains(&f.as_str())
            && !NAME_LEAD_INS.contains(&f.as_str())
    };
    let turn = (1..=2).contains(&after_words.len())
        && (1..=3).contains(&before_words.len())
        && after_words.iter().all(plain)
        && before_words.iter().all(plain)
        && !after.contains(',');
    turn.then(|| format!("{} {}", after_words.join(" "), before_words.join(" ")))
}

impl TryFrom<&str> for PersonName {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        if super::person::asks_for_person(input) {
            // « je veux parler à quelqu'un » is a request, not a person named "Je".
            return Err(Rejection::NotAName);
        }
        let turned = family_name_first(input);
        let input = turned.as_deref().unwrap_or(input);
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
