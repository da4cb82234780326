//! Whether it is urgent, and yes/no answers in general.

use super::common::Rejection;
use crate::text::{FILLERS, contains_phrase, fold};

/// Is the job urgent? A negation wins over the word "urgent" it negates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Urgency(pub bool);

const URGENCY_NEGATIONS: &[&str] = &[
    "pas urgent",
    "pas vraiment urgent",
    "pas si urgent",
    "pas tres urgent",
    "pas trop urgent",
    "pas d urgence",
    "aucune urgence",
    "rien d urgent",
    "pas vraiment",
    "pas presse",
    "pas pressant",
    "pas de presse",
    "pas de rush",
    "pas de hate",
    "peut attendre",
    "peux attendre",
    "pouvons attendre",
    "pas du tout",
    "pantoute",
    "not urgent",
    "not really",
    "not an emergency",
    "no rush",
    "no hurry",
    "can wait",
    "not in a hurry",
    "it can wait",
    "pas necessairement",
];

const URGENCY_AFFIRMATIONS: &[&str] = &[
    "urgent",
    "urgente",
    "urgence",
    "c'est urgent",
    "tres urgent",
    "asap",
    "des que possible",
    "le plus tot possible",
    "au plus vite",
    "le plus vite possible",
    "tout de suite",
    "rapidement",
    "vite",
    "presse",
    "right away",
    "as soon as possible",
    "emergency",
    "urgently",
    "immediately",
    "right now",
];

const YES_WORDS: &[&str] = &[
    "oui",
    "ouais",
    "ouin",
    "ouain",
    "yes",
    "yeah",
    "yep",
    "yup",
    "absolument",
    "certainement",
    "definitely",
    "absolutely",
    "exact",
    "exactement",
    "effectivement",
    "sure",
    "evidemment",
    "certain",
];

const NO_WORDS: &[&str] = &["non", "no", "nope", "nah", "nan", "negatif"];

pub(super) fn any_phrase(haystack: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(haystack, p))
}

/// Removes every occurrence of the phrases from the folded text (word boundaries).
pub(super) fn remove_phrases(haystack: &str, phrases: &[&str]) -> String {
    let mut hay = format!(" {} ", haystack.replace(['\'', '-'], " "));
    for p in phrases {
        let needle = format!(" {} ", p.replace(['\'', '-'], " "));
        while hay.contains(&needle) {
            hay = hay.replace(&needle, " ");
        }
    }
    hay.trim().to_owned()
}

impl TryFrom<&str> for Urgency {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        let folded = fold(input);
        if folded.trim().is_empty() {
            return Err(Rejection::Empty);
        }
        let negated = any_phrase(&folded, URGENCY_NEGATIONS);
        // Words left once negated phrases are gone: "pas urgent" must not count as "urgent".
        let rest = remove_phrases(&folded, URGENCY_NEGATIONS);
        let ws: Vec<&str> = rest.split(' ').filter(|w| !w.is_empty()).collect();
        let no = ws.iter().any(|w| NO_WORDS.contains(w));
        let yes = ws.iter().any(|w| YES_WORDS.contains(w));
        let urgent = any_phrase(&rest, URGENCY_AFFIRMATIONS);
        let negative = negated || no;
        let positive = yes || urgent;
        match (positive, negative) {
            (true, false) => Ok(Urgency(true)),
            (false, true) => Ok(Urgency(false)),
            // An explicit negated urgency ("oui mais c'est pas urgent") wins.
            (true, true) if negated => Ok(Urgency(false)),
            (true, true) => Err(Rejection::Contradictory),
            (false, false) => Err(Rejection::Unclear),
        }
    }
}

/// A plain yes or no, for confirming the caller-ID number.
pub fn yes_no(input: &str) -> Option<bool> {
    const YES_PHRASES: &[&str] = &[
        "c'est ca",
        "c'est bien ca",
        "c'est le bon",
        "c'est correct",
        "correct",
        "that's right",
        "that's correct",
        "that's it",
        "right",
        "parfait",
        "bon numero",
        "good",
    ];
    let folded = fold(input);
    let ws: Vec<&str> = folded
        .split([' ', '\'', '-'])
        .filter(|w| !w.is_empty() && !FILLERS.contains(w))
        .collect();
    let no = ws.iter().any(|w| NO_WORDS.contains(w)) || contains_phrase(&folded, "pas le bon");
    let yes = ws.iter().any(|w| YES_WORDS.contains(w)) || any_phrase(&folded, YES_PHRASES);
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}
