//! Language switches (« in English please ») and blank answers.

use super::urgency::{any_phrase, remove_phrases};
use crate::domain::Language;
use crate::text::{FILLERS, fold, words};

/// The caller asked to speak English (`English please`, `en anglais`), or French again.
pub fn language_request(input: &str) -> Option<Language> {
    const EN: &[&str] = &[
        "english",
        "in english",
        "anglais",
        "en anglais",
        "parler anglais",
        "speak english",
        "parlez vous anglais",
        "do you speak english",
    ];
    const FR: &[&str] = &[
        "en francais",
        "in french",
        "french please",
        "parlez francais",
    ];
    let folded = fold(input);
    if any_phrase(&folded, FR) {
        Some(Language::Fr)
    } else if any_phrase(&folded, EN) {
        Some(Language::En)
    } else {
        None
    }
}

/// The request words removed, to see whether anything else was said with them.
pub fn without_language_request(input: &str) -> String {
    const PHRASES: &[&str] = &[
        "can we speak in english please",
        "can we speak english",
        "can you speak english",
        "do you speak english",
        "parlez vous anglais",
        "in english please",
        "english please",
        "en anglais s'il vous plait",
        "en anglais svp",
        "en anglais",
        "in english",
        "speak english",
        "parler anglais",
        "english",
        "anglais",
        "please",
        "s'il vous plait",
        "svp",
    ];
    remove_phrases(&fold(input), PHRASES)
}

const ENGLISH_MARKERS: &[&str] = &[
    "my", "name", "is", "the", "yes", "yeah", "no", "it", "it's", "its", "i", "i'm", "need",
    "want", "please", "number", "street", "tree", "trees", "and", "of", "to", "a", "cut",
    "removed", "remove", "stump", "hedge", "storm", "not", "can", "wait", "have", "we", "our",
    "on", "my", "there", "this", "that", "fell", "down", "big", "in", "front", "yard", "back",
    "house", "roof", "nope", "sure", "thanks", "thank", "you", "hi", "hello", "one", "two",
    "three", "four", "five", "seven", "eight", "nine", "double", "triple",
];

const FRENCH_MARKERS: &[&str] = &[
    "je", "j", "mon", "ma", "mes", "c", "est", "oui", "non", "le", "la", "les", "un", "une", "de",
    "des", "du", "rue", "arbre", "arbres", "pas", "et", "a", "ca", "sur", "dans", "merci", "ouais",
    "il", "elle", "y", "qui", "que", "avec", "pour", "mais", "maison", "cour", "nom", "numero",
    "appelle", "bonjour", "voudrais", "faudrait", "couper",
];

/// True when the answer is clearly English: English markers and no French one, or a short English
/// yes/no.
pub fn clearly_english(input: &str) -> bool {
    let folded = fold(input);
    let ws: Vec<&str> = folded
        .split([' ', '-'])
        .filter(|w| !w.is_empty() && !FILLERS.contains(w))
        .collect();
    let en = ws.iter().filter(|w| ENGLISH_MARKERS.contains(w)).count();
    let fr = ws
        .iter()
        .flat_map(|w| w.split('\''))
        .filter(|w| FRENCH_MARKERS.contains(w))
        .count();
    fr == 0
        && (en >= 2
            || (ws.len() <= 2 && ws.iter().any(|w| ["yes", "yeah", "nope", "no"].contains(w))))
}

/// Answers that are not words at all for our purposes: empty after fillers.
pub fn is_blank(input: &str) -> bool {
    words(input).iter().all(|w| FILLERS.contains(&w.as_str()))
}
