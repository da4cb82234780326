//! Parsers for the six answers, each a domain type built with `TryFrom<&str>`.
//!
//! Input is what ASR heard: no punctuation, hesitations (`euh`), repeated words, mixed French and
//! English. Every parser is total: any string gives a value or a typed rejection, never a panic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::Language;
use crate::text::{FILLERS, HESITATIONS, contains_phrase, fold, words};

/// Longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("nothing usable was said")]
    Empty,
    #[error("a name cannot be only digits")]
    Digits,
    #[error("longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("that does not sound like a name")]
    NotAName,
    #[error("an address needs a civic number and a street, or a postal code")]
    NoAddress,
    #[error("fewer than 3 meaningful characters")]
    TooShort,
    #[error("neither yes nor no")]
    Unclear,
    #[error("both yes and no")]
    Contradictory,
}

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

const NAME_TRAILERS: &[&str] = &[
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

/// Strips `lead_ins` at the start of `words` (repeatedly), `trailers` at the end, and fillers
/// anywhere. Works on original words, matching their folded forms; linear in the number of words
/// times the number of phrases.
fn strip_affixes<'a>(words: Vec<&'a str>, lead_ins: &[&str], trailers: &[&str]) -> Vec<&'a str> {
    let (words, folded): (Vec<&str>, Vec<String>) = words
        .into_iter()
        .map(|w| (w, fold(w)))
        .filter(|(_, f)| !f.is_empty() && !HESITATIONS.contains(&f.as_str()))
        .unzip();
    let matches_at = |at: usize, phrase: &str| -> Option<usize> {
        let parts: Vec<&str> = phrase.split(' ').collect();
        (folded.len() >= at + parts.len()
            && folded[at..at + parts.len()]
                .iter()
                .zip(&parts)
                .all(|(a, b)| a == b))
        .then_some(parts.len())
    };
    let mut start = 0;
    loop {
        if let Some(len) = lead_ins.iter().find_map(|p| matches_at(start, p)) {
            start += len;
        } else if FILLERS.contains(&folded.get(start).map_or("", String::as_str))
            && (start + 1..folded.len()).next().is_some_and(|next| {
                FILLERS.contains(&folded[next].as_str())
                    || lead_ins.iter().any(|p| matches_at(next, p).is_some())
            })
        {
            // "ben je m'appelle …": a filler before a lead-in; "Ben Tremblay" keeps its Ben.
            start += 1;
        } else {
            break;
        }
    }
    let mut end = folded.len();
    loop {
        let found = trailers.iter().find_map(|p| {
            let n = p.split(' ').count();
            (end >= start + n).then(|| matches_at(end - n, p)).flatten()
        });
        match found {
            Some(len) => end -= len,
            None => break,
        }
    }
    words[start..end].to_vec()
}

/// Splits on white space and sentence punctuation, keeping apostrophes and hyphens inside words.
fn raw_words(input: &str) -> Vec<&str> {
    input
        .split(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ',' | '.' | ';' | ':' | '!' | '?' | '"' | '«' | '»' | '(' | ')'
                )
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Drops a word repeated right after itself (`Jean Jean Tremblay`), ASR's stutter.
fn dedupe_stutter(words: Vec<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for w in words {
        if out.last().is_some_and(|last| fold(last) == fold(w)) {
            continue;
        }
        out.push(w);
    }
    out
}

fn capitalise_part(part: &str) -> String {
    let mut chars = part.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// `marie-ève` → `Marie-Ève`, `o'brien` → `O'Brien`, `d'amours` → `D'Amours`.
fn capitalise_word(word: &str) -> String {
    word.split('-')
        .map(|part| {
            part.split('\'')
                .map(capitalise_part)
                .collect::<Vec<_>>()
                .join("'")
        })
        .collect::<Vec<_>>()
        .join("-")
}

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

/// The kind of work, as one slug (`bp.leads.type_service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Elagage,
    Abattage,
    Essouchement,
    Haie,
    UrgenceTempete,
    Plantation,
    Evaluation,
    Autre,
}

impl ServiceType {
    pub const ALL: [ServiceType; 8] = [
        ServiceType::Elagage,
        ServiceType::Abattage,
        ServiceType::Essouchement,
        ServiceType::Haie,
        ServiceType::UrgenceTempete,
        ServiceType::Plantation,
        ServiceType::Evaluation,
        ServiceType::Autre,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ServiceType::Elagage => "elagage",
            ServiceType::Abattage => "abattage",
            ServiceType::Essouchement => "essouchement",
            ServiceType::Haie => "haie",
            ServiceType::UrgenceTempete => "urgence_tempete",
            ServiceType::Plantation => "plantation",
            ServiceType::Evaluation => "evaluation",
            ServiceType::Autre => "autre",
        }
    }

    /// How Myriam names it back to the caller.
    pub fn label(self, language: Language) -> &'static str {
        match (self, language) {
            (ServiceType::Elagage, Language::Fr) => "de l'élagage",
            (ServiceType::Abattage, Language::Fr) => "l'abattage d'un arbre",
            (ServiceType::Essouchement, Language::Fr) => "de l'essouchement",
            (ServiceType::Haie, Language::Fr) => "la taille de haie",
            (ServiceType::UrgenceTempete, Language::Fr) => "une urgence après une tempête",
            (ServiceType::Plantation, Language::Fr) => "de la plantation",
            (ServiceType::Evaluation, Language::Fr) => "une évaluation",
            (ServiceType::Autre, Language::Fr) => "votre demande",
            (ServiceType::Elagage, Language::En) => "tree pruning",
            (ServiceType::Abattage, Language::En) => "tree removal",
            (ServiceType::Essouchement, Language::En) => "stump grinding",
            (ServiceType::Haie, Language::En) => "hedge trimming",
            (ServiceType::UrgenceTempete, Language::En) => "storm damage",
            (ServiceType::Plantation, Language::En) => "tree planting",
            (ServiceType::Evaluation, Language::En) => "a tree assessment",
            (ServiceType::Autre, Language::En) => "your request",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.slug() == slug)
    }
}

/// Keyword rules in priority order: the first rule with a match wins. Phrases are folded (no
/// accents) and matched on word boundaries; a `*` suffix matches any word starting so.
const SERVICE_RULES: &[(ServiceType, &[&str])] = &[
    (
        ServiceType::UrgenceTempete,
        &[
            "tempete*",
            "storm*",
            "orage*",
            "verglas",
            "arbre tombe*",
            "arbre est tombe*",
            "tombe sur*",
            "tombee sur*",
            "branche sur le toit",
            "branche sur la maison",
            "branche sur le fil*",
            "branches sur le fil*",
            "sur les fils",
            "sur le fil*",
            "sur la maison",
            "sur le toit",
            "sur mon toit",
            "sur mon auto*",
            "sur le char",
            "fallen*",
            "fell on*",
            "fell*",
            "on the roof",
            "on my roof",
            "on the house",
            "power line*",
            "downed*",
            "degat*",
            "urgence*",
            "emergency",
        ],
    ),
    (
        ServiceType::Essouchement,
        &[
            "souche*", "essouch*", "stump*", "racine*", "rogner*", "grind*",
        ],
    ),
    (
        ServiceType::Haie,
        &["haie*", "hedge*", "cedres", "cedre*", "thuya*"],
    ),
    (
        ServiceType::Abattage,
        &[
            "abatt*",
            "abbat*",
            "abat*",
            "couper l arbre",
            "couper un arbre",
            "couper mon arbre",
            "couper des arbres",
            "couper les arbres",
            "couper deux arbres",
            "couper trois arbres",
            "enlever l arbre",
            "enlever un arbre",
            "enlever mon arbre",
            "enlever des arbres",
            "faire couper*",
            "faire enlever*",
            "tree removal",
            "remove*",
            "removal",
            "cut down",
            "take down",
            "taken down",
            "cut a tree",
            "cut the tree",
            "cut my tree",
            "fell a tree",
            "mort*",
            "dead tree*",
        ],
    ),
    (
        ServiceType::Elagage,
        &[
            "elag*",
            "emond*",
            "taill*",
            "prun*",
            "trim*",
            "branche*",
            "couper des branches",
            "ebranch*",
            "haubanage",
            "cabling",
            "thin*",
        ],
    ),
    (
        ServiceType::Plantation,
        &[
            "plant*",
            "planter*",
            "replanter*",
            "nouvel arbre",
            "new tree*",
        ],
    ),
    (
        ServiceType::Evaluation,
        &[
            "evaluation*",
            "evaluer",
            "diagnostic*",
            "inspect*",
            "estime*",
            "estimation*",
            "soumission*",
            "quote",
            "estimate*",
            "assessment",
            "assess*",
            "malade",
            "sick",
            "expert*",
            "arboriculteur*",
            "verifier",
            "check*",
        ],
    ),
    (
        ServiceType::Autre,
        &["autre*", "other", "something else", "autre chose"],
    ),
];

fn phrase_matches(words: &[String], phrase: &str) -> bool {
    let parts: Vec<&str> = phrase.split(' ').collect();
    if parts.len() > words.len() {
        return false;
    }
    words.windows(parts.len()).any(|window| {
        window
            .iter()
            .zip(&parts)
            .all(|(w, p)| match p.strip_suffix('*') {
                Some(prefix) => w.starts_with(prefix),
                None => w == p,
            })
    })
}

impl TryFrom<&str> for ServiceType {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        let ws: Vec<String> = words(input)
            .into_iter()
            .filter(|w| !FILLERS.contains(&w.as_str()))
            .collect();
        if let Some(slug) = ServiceType::ALL
            .iter()
            .find(|s| ws.len() == 1 && ws[0] == s.slug() || fold(input).trim() == s.slug())
        {
            return Ok(*slug);
        }
        for (service, phrases) in SERVICE_RULES {
            if phrases.iter().any(|p| phrase_matches(&ws, p)) {
                return Ok(*service);
            }
        }
        // Something meaningful but unlisted: keep it as `autre`, the description step says more.
        if Description::try_from(input).is_ok() && !is_non_answer(&ws) {
            Ok(ServiceType::Autre)
        } else {
            Err(Rejection::Empty)
        }
    }
}

/// "je sais pas", "pardon", "what": the caller did not answer.
fn is_non_answer(ws: &[String]) -> bool {
    const NON: &[&str] = &[
        "je", "sais", "pas", "sait", "pardon", "quoi", "what", "sorry", "comment", "repeter",
        "repeat", "don", "t", "know", "i", "oui", "non", "yes", "no", "ok", "okay", "allo",
        "hello", "rien", "nothing", "vous", "pouvez", "can", "you",
    ];
    ws.iter().all(|w| NON.contains(&w.as_str()))
}

/// A free-text description of the job, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Description {
    type Error = Rejection;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        let meaningful: usize = words(input)
            .iter()
            .filter(|w| !FILLERS.contains(&w.as_str()))
            .map(|w| w.chars().filter(|c| c.is_alphanumeric()).count())
            .sum();
        if meaningful < 3 {
            return Err(Rejection::TooShort);
        }
        let collapsed = input.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Self(collapsed))
    }
}

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

fn any_phrase(haystack: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(haystack, p))
}

/// Removes every occurrence of the phrases from the folded text (word boundaries).
fn remove_phrases(haystack: &str, phrases: &[&str]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_french() {
        for (input, expected) in [
            ("je m'appelle Marie-Ève Côté", "Marie-Ève Côté"),
            ("Je m’appelle marie-ève côté merci", "Marie-Ève Côté"),
            ("mon nom est jean tremblay", "Jean Tremblay"),
            ("c'est Jean-François Gagnon", "Jean-François Gagnon"),
            ("moi c'est Sylvie Bélanger", "Sylvie Bélanger"),
            ("euh je m'appelle euh Luc Ouellet", "Luc Ouellet"),
            ("Luc Luc Ouellet", "Luc Ouellet"),
            ("Ben Tremblay", "Ben Tremblay"),
            ("ben je m'appelle Ben Tremblay", "Ben Tremblay"),
            ("euh Ben euh Tremblay", "Ben Tremblay"),
            (
                "oui bonjour mon nom c'est Nathalie D'Amours",
                "Nathalie D'Amours",
            ),
            ("jean de la fontaine", "Jean de la Fontaine"),
            ("GAÉTAN LÉVESQUE", "Gaétan Lévesque"),
            ("  Émilie   Roy  ", "Émilie Roy"),
            (
                "mon nom complet c'est André St-Pierre voilà",
                "André St-Pierre",
            ),
        ] {
            assert_eq!(
                PersonName::try_from(input).map(|n| n.as_str().to_owned()),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn names_english() {
        for (input, expected) in [
            ("my name is John Smith", "John Smith"),
            ("it's Mary O'Brien", "Mary O'Brien"),
            ("um this is Peter van der Berg thanks", "Peter van der Berg"),
            ("I'm Sarah Connor", "Sarah Connor"),
            ("my name is Sarah Oh", "Sarah Oh"),
            ("hi my name is uh David Miller thank you", "David Miller"),
        ] {
            assert_eq!(
                PersonName::try_from(input).map(|n| n.as_str().to_owned()),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn names_rejected() {
        for (input, why) in [
            ("", Rejection::Empty),
            ("euh", Rejection::Empty),
            ("je m'appelle", Rejection::Empty),
            ("5145551234", Rejection::Digits),
            ("514 555 1234", Rejection::Digits),
            ("oui", Rejection::Empty),
            ("non", Rejection::NotAName),
            ("je sais pas", Rejection::NotAName),
            ("Jean 2", Rejection::NotAName),
            ("???", Rejection::Empty),
            ("what", Rejection::NotAName),
            (
                "j'ai un gros arbre qui est tombé sur le toit de la maison",
                Rejection::NotAName,
            ),
        ] {
            assert_eq!(PersonName::try_from(input), Err(why), "{input}");
        }
        assert_eq!(
            PersonName::try_from("a".repeat(121).as_str()),
            Err(Rejection::TooLong)
        );
    }

    #[test]
    fn postal_codes_are_found_and_normalised() {
        for (input, expected) in [
            ("H2X 1Y4", "H2X 1Y4"),
            ("h2x1y4", "H2X 1Y4"),
            ("h 2 x 1 y 4", "H2X 1Y4"),
            ("H2X-1Y4", "H2X 1Y4"),
            ("123 rue Principale, Laval h7n 2b3", "H7N 2B3"),
        ] {
            assert_eq!(
                PostalCode::find(input).map(|(c, _)| c.as_str().to_owned()),
                Some(expected.to_owned()),
                "{input}"
            );
        }
        for input in ["D2X 1Y4", "H2X 1Y", "Z9Z9Z9", "abc", "ah2x1y4z"] {
            assert!(PostalCode::find(input).is_none(), "{input}");
        }
    }

    #[test]
    fn addresses() {
        for (input, expected, civic, postal) in [
            (
                "123 rue Principale, Laval",
                "123 rue Principale, Laval",
                Some("123"),
                None,
            ),
            (
                "c'est au 4567 boulevard Saint-Laurent Montréal h2x 1y4",
                "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
                Some("4567"),
                Some("H2X 1Y4"),
            ),
            (
                "euh j'habite au 12B chemin du Lac",
                "12B chemin du Lac",
                Some("12B"),
                None,
            ),
            ("H3Z 2Y7", "H3Z 2Y7", None, Some("H3Z 2Y7")),
            (
                "my address is 55 Maple Street, Westmount",
                "55 Maple Street, Westmount",
                Some("55"),
                None,
            ),
            (
                "2-345 avenue des Pins Ouest",
                "2-345 avenue des Pins Ouest",
                Some("2-345"),
                None,
            ),
        ] {
            let a = Address::try_from(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.as_str(), expected, "{input}");
            assert_eq!(a.civic_number(), civic, "{input}");
            assert_eq!(a.postal_code().map(PostalCode::as_str), postal, "{input}");
        }
        for input in ["", "rue Principale", "à Laval", "123", "je sais pas", "euh"] {
            assert!(Address::try_from(input).is_err(), "{input}");
        }
    }

    #[test]
    fn services_french_and_english() {
        use ServiceType::*;
        for (input, expected) in [
            ("de l'élagage", Elagage),
            ("émondage", Elagage),
            ("j'aurais besoin de faire tailler un arbre", Elagage),
            ("couper des branches", Elagage),
            ("pruning", Elagage),
            ("trim my maple", Elagage),
            ("abattage", Abattage),
            ("faire couper un arbre", Abattage),
            ("abattre un gros érable", Abattage),
            ("tree removal", Abattage),
            ("I need a dead tree cut down", Abattage),
            ("enlever une souche", Essouchement),
            ("stump grinding", Essouchement),
            ("taille de haie", Haie),
            ("tailler ma haie de cèdres", Haie),
            ("hedge trimming", Haie),
            ("un arbre tombé sur le toit", UrgenceTempete),
            ("une branche sur le fil électrique", UrgenceTempete),
            ("dégâts de la tempête", UrgenceTempete),
            ("a tree fell on my garage after the storm", UrgenceTempete),
            ("planter des arbres", Plantation),
            ("plantation", Plantation),
            ("un diagnostic mon arbre est malade", Evaluation),
            ("une estimation", Evaluation),
            ("inspection", Evaluation),
            ("I'd like a quote", Evaluation),
            ("autre chose", Autre),
            ("déneigement du toit", Autre),
            ("euh élagage élagage", Elagage),
        ] {
            assert_eq!(ServiceType::try_from(input), Ok(expected), "{input}");
        }
        for input in ["", "euh", "je sais pas", "pardon?", "ok"] {
            assert!(ServiceType::try_from(input).is_err(), "{input}");
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            Description::try_from("  un gros   érable mort près de la maison ")
                .unwrap()
                .as_str(),
            "un gros érable mort près de la maison"
        );
        assert!(Description::try_from("oak").is_ok());
        for input in ["", "euh", "ok", "…", "euh hum ah", "a b"] {
            assert_eq!(
                Description::try_from(input),
                Err(Rejection::TooShort),
                "{input}"
            );
        }
    }

    #[test]
    fn urgency() {
        for (input, expected) in [
            ("oui", true),
            ("ouais", true),
            ("oui c'est urgent", true),
            ("absolument", true),
            ("c'est urgent", true),
            ("dès que possible", true),
            ("le plus vite possible svp", true),
            ("yes", true),
            ("ASAP", true),
            ("yeah it's an emergency", true),
            ("non", false),
            ("pas vraiment", false),
            ("pas urgent", false),
            ("non, c'est pas urgent", false),
            ("ça peut attendre", false),
            ("pas pressé", false),
            ("oui mais c'est pas urgent", false),
            ("no", false),
            ("not really", false),
            ("no rush, it can wait", false),
            ("euh non pas du tout", false),
        ] {
            assert_eq!(Urgency::try_from(input), Ok(Urgency(expected)), "{input}");
        }
        for (input, why) in [
            ("", Rejection::Empty),
            ("peut-être", Rejection::Unclear),
            ("je sais pas", Rejection::Unclear),
            ("oui non", Rejection::Contradictory),
            ("non c'est urgent", Rejection::Contradictory),
        ] {
            assert_eq!(Urgency::try_from(input), Err(why), "{input}");
        }
    }

    #[test]
    fn yes_no_and_language_detection() {
        assert_eq!(yes_no("oui c'est ça"), Some(true));
        assert_eq!(yes_no("c'est le bon"), Some(true));
        assert_eq!(yes_no("yes that's right"), Some(true));
        assert_eq!(yes_no("non"), Some(false));
        assert_eq!(yes_no("non c'est pas le bon"), Some(false));
        assert_eq!(yes_no("euh"), None);
        assert_eq!(language_request("in English please"), Some(Language::En));
        assert_eq!(
            language_request("est-ce que je peux parler anglais"),
            Some(Language::En)
        );
        assert_eq!(language_request("je m'appelle Jean"), None);
        assert_eq!(without_language_request("English please"), "");
        assert_eq!(
            without_language_request("in English please, my name is John"),
            "my name is john"
        );
        assert!(clearly_english("my name is John Smith"));
        assert!(clearly_english("yes"));
        assert!(!clearly_english("je m'appelle John Smith"));
        assert!(!clearly_english("John Smith"));
        assert!(!clearly_english("oui"));
    }
}
