//! A request to speak with a person (« je veux parler à quelqu'un », "a real person please"): an
//! intent that leaves the qualification, never the value of a field.

use crate::text::words;

/// Verbs (folded words) that ask to be put through. Followed, within a few words, by a
/// [`PERSON_WORDS`] word, they make a request for a person.
const REQUEST_VERBS: &[&str] = &[
    "parler",
    "parle",
    "jaser",
    "transferer",
    "transferez",
    "transfere",
    "passer",
    "passez",
    "rejoindre",
    "joindre",
    "talk",
    "speak",
    "transfer",
    "connect",
    "put",
    "reach",
];

/// Who the caller asks for (folded words).
const PERSON_WORDS: &[&str] = &[
    "quelqu'un",
    "quelquun",
    "personne",
    "humain",
    "humaine",
    "agent",
    "agente",
    "representant",
    "representante",
    "prepose",
    "preposee",
    "employe",
    "employee",
    "conseiller",
    "conseillere",
    "bureau",
    "reception",
    "receptionniste",
    "patron",
    "responsable",
    "operateur",
    "operatrice",
    "someone",
    "somebody",
    "person",
    "human",
    "representative",
    "rep",
    "operator",
    "office",
    "staff",
    "manager",
    "receptionist",
];

/// Phrases that are a request on their own, wherever they appear (folded, word-bounded).
const STANDALONE: &[&str] = &[
    "vraie personne",
    "une personne reelle",
    "etre humain",
    "un humain",
    "une humaine",
    "real person",
    "live person",
    "actual person",
    "a human",
    "human being",
    "live agent",
    "customer service",
    "service a la clientele",
];

/// Words that may surround a bare request ("un agent s'il vous plaît", "operator please").
const POLITE: &[&str] = &[
    "un", "une", "a", "an", "the", "le", "la", "l", "s", "il", "vous", "plait", "svp", "please",
    "non", "no", "oui", "yes", "je", "veux", "voudrais", "i", "want", "euh", "um", "uh", "ben",
    "moi", "me", "just", "juste", "avec", "with", "to", "pls",
];

/// How many words may sit between a request verb and the person asked for
/// (« parler à une vraie personne », "speak with someone").
const MAX_GAP: usize = 4;

/// True when `input` (what ASR heard) asks for a person rather than answering.
pub fn asks_for_person(input: &str) -> bool {
    let folded = crate::text::fold(input);
    if STANDALONE
        .iter()
        .any(|phrase| crate::text::contains_phrase(&folded, phrase))
    {
        return true;
    }
    // `quelqu'un` keeps its apostrophe in PERSON_WORDS: split at spaces and hyphens only
    // (`passez-moi`).
    let tokens: Vec<&str> = folded.split([' ', '-']).filter(|w| !w.is_empty()).collect();
    let is_person = |w: &str| PERSON_WORDS.contains(&w);
    let verb_then_person = tokens.iter().enumerate().any(|(i, w)| {
        REQUEST_VERBS.contains(w)
            && tokens
                .iter()
                .skip(i + 1)
                .take(MAX_GAP)
                .any(|next| is_person(next))
    });
    if verb_then_person {
        // « je veux parler à personne » means "to nobody" only in writing; on the phone it is
        // always the request. "speak to the office about …" too.
        return true;
    }
    // A bare request: a person word with only politeness around it ("agent", "un représentant svp").
    let split = words(input);
    let person_count = tokens.iter().filter(|w| is_person(w)).count();
    person_count > 0
        && split.iter().all(|w| {
            POLITE.contains(&w.as_str())
                || crate::text::FILLERS.contains(&w.as_str())
                || is_person(w)
                || w == "quelqu"
        })
}

/// True when the IVR's keypad answer asks for a person (the key `0`).
pub fn is_person_key(digits: &str) -> bool {
    digits.trim() == "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests as ASR hears them: no punctuation, hesitations, mixed case, English and French.
    const REQUESTS: &[&str] = &[
        "je veux parler à quelqu'un",
        "Je veux parler à quelqu’un",
        "non je veux parler à un humain",
        "euh je voudrais parler à une vraie personne",
        "est-ce que je peux parler à quelqu'un du bureau",
        "pouvez-vous me transférer au bureau",
        "passez-moi un agent s'il vous plaît",
        "un représentant svp",
        "une personne réelle",
        "un être humain",
        "parler avec une préposée",
        "agent",
        "Représentant",
        "I want to talk to someone",
        "can I speak with a real person please",
        "uh I need to speak to a human",
        "operator",
        "transfer me to the office",
        "put me through to somebody",
        "customer service",
        "a live agent",
        "representative please",
        "parler au patron",
        "je veux juste parler à un employé",
        "I want a human",
        "hum... un représentant s'il vous plaît, euh",
    ];

    /// Answers that are not requests, though some share words with them.
    const ANSWERS: &[&str] = &[
        "Marie Tremblay",
        "Jean-Pierre Personne",
        "123 rue Principale Laval",
        "cinq un quatre cinq cinq cinq un deux trois quatre",
        "oui c'est ça",
        "un arbre est tombé sur le bureau de mon garage",
        "un gros érable penche vers la maison",
        "élagage",
        "non",
        "oui",
        "it's urgent",
        "the tree fell on my office building",
        "personne n'est blessé",
        "abattage d'un arbre",
        "",
        "   ",
        "I need someone to cut down a maple",
        "j'ai besoin de quelqu'un pour abattre un arbre",
    ];

    #[test]
    fn requests_for_a_person_are_recognised() {
        for request in REQUESTS {
            assert!(
                asks_for_person(request),
                "{request:?} should ask for a person"
            );
        }
    }

    #[test]
    fn answers_are_not_requests() {
        for answer in ANSWERS {
            assert!(!asks_for_person(answer), "{answer:?} is an answer");
        }
    }

    #[test]
    fn only_the_key_zero_asks_for_a_person() {
        assert!(is_person_key("0"));
        assert!(is_person_key(" 0 "));
        for digits in ["1", "00", "10", "", "#", "*0"] {
            assert!(!is_person_key(digits), "{digits:?}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let alphabet = [
            "à", "quelqu'", "un", "’", "-", " ", "personne", "parler", "\u{0}", "é", "0",
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let _ = asks_for_person(&format!("{a}{b}{c}"));
                }
            }
        }
    }
}
