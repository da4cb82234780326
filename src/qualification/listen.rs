//! Listening to a whole utterance, the way a receptionist does: every field's value the caller
//! said, wherever it sits in the sentence (« c'est Julie Tremblay, j'ai un arbre tombé sur ma maison
//! au 45 rue King Ouest »), the correction lead that announces a change (« non attendez, … »), and a
//! question the caller asks (price, hours, the services offered).
//!
//! Only confident matches are kept: a name after a lead-in (« je m'appelle », « c'est » at the
//! start), a phone number that is a valid NANP number, an address with a civic number and a street
//! word (`rue`, `chemin`, `rang`, `street`…), a service matched by its rules (never `autre`),
//! urgency only from explicit cues. Total on any input: never panics.

use crate::domain::PhoneNumber;
use crate::text::{FILLERS, HESITATIONS, contains_phrase, fold};

use super::parsing::{Address, Description, PersonName, ServiceType};

/// One word as heard and folded.
#[derive(Debug, Clone)]
struct Word<'a> {
    raw: &'a str,
    folded: String,
}

fn split(input: &str) -> Vec<Word<'_>> {
    input
        .split_whitespace()
        .map(|raw| Word {
            raw,
            folded: fold(raw),
        })
        .filter(|w| !w.folded.is_empty() || w.raw.chars().any(char::is_alphanumeric))
        .collect()
}

/// Markers that open a correction. `non`/`no` alone may also simply answer a yes/no question.
const CORRECTION_LEADS: &[&str] = &[
    "non",
    "no",
    "nope",
    "nan",
    "attendez",
    "attends",
    "attend",
    "wait",
    "hold on",
    "en fait",
    "plutot",
    "pardon",
    "excusez-moi",
    "excusez moi",
    "excusez",
    "oups",
    "oops",
    "actually",
    "sorry",
    "i mean",
    "je veux dire",
    "correction",
    "finalement",
    "scratch that",
    "je me suis trompe",
    "je me suis trompee",
    "my mistake",
    "un instant",
    "une seconde",
    "c'est plutot",
    "c'est pas ca",
    "ce n'est pas ca",
    "pas ca",
    "that's wrong",
    "that's not right",
];

/// The correction lead at the start of an utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    /// A marker other than a plain no (« attendez », « en fait », "actually") was said.
    pub correcting: bool,
    /// A plain « non » / "no" was said (it may be the answer to a yes/no question).
    pub said_no: bool,
    /// What follows the lead, as said.
    pub rest: String,
}

fn phrase_at(words: &[Word<'_>], at: usize, phrase: &str) -> Option<usize> {
    let parts: Vec<&str> = phrase.split(' ').collect();
    let end = at.checked_add(parts.len())?;
    if end > words.len() {
        return None;
    }
    words[at..end]
        .iter()
        .zip(&parts)
        .all(|(w, p)| w.folded == *p)
        .then_some(parts.len())
}

/// Splits off the correction lead (markers and fillers) at the start of `input`.
pub fn correction_lead(input: &str) -> Lead {
    let words = split(input);
    let mut at = 0;
    let mut correcting = false;
    let mut said_no = false;
    while at < words.len() {
        let w = words[at].folded.as_str();
        if FILLERS.contains(&w) || HESITATIONS.contains(&w) {
            at += 1;
            continue;
        }
        let Some((phrase, len)) = CORRECTION_LEADS
            .iter()
            .find_map(|p| phrase_at(&words, at, p).map(|len| (*p, len)))
        else {
            break;
        };
        if matches!(phrase, "non" | "no" | "nope" | "nan") {
            said_no = true;
        } else {
            correcting = true;
        }
        at += len;
    }
    Lead {
        correcting,
        said_no,
        rest: words[at..]
            .iter()
            .map(|w| w.raw)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Words that make a spoken number, folded.
fn number_word(word: &str) -> Option<u32> {
    Some(match word {
        "zero" | "oh" => 0,
        "un" | "une" | "one" => 1,
        "deux" | "two" => 2,
        "trois" | "three" => 3,
        "quatre" | "four" => 4,
        "cinq" | "five" => 5,
        "six" => 6,
        "sept" | "seven" => 7,
        "huit" | "eight" => 8,
        "neuf" | "nine" => 9,
        "dix" | "ten" => 10,
        "onze" | "eleven" => 11,
        "douze" | "twelve" => 12,
        "treize" | "thirteen" => 13,
        "quatorze" | "fourteen" => 14,
        "quinze" | "fifteen" => 15,
        "seize" | "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "vingt" | "vingts" | "twenty" => 20,
        "trente" | "thirty" => 30,
        "quarante" | "forty" => 40,
        "cinquante" | "fifty" => 50,
        "soixante" | "sixty" => 60,
        "septante" | "seventy" => 70,
        "huitante" | "octante" | "eighty" => 80,
        "nonante" | "ninety" => 90,
        "cent" | "cents" | "hundred" => 100,
        "mille" | "thousand" => 1000,
        _ => return None,
    })
}

/// True for a word (folded) that can be part of a spoken or written number.
fn numberish(folded: &str) -> bool {
    !folded.is_empty()
        && folded.split('-').filter(|p| !p.is_empty()).all(|p| {
            p.bytes().all(|b| b.is_ascii_digit())
                || number_word(p).is_some()
                || matches!(p, "et" | "and" | "double" | "triple")
        })
}

fn has_digit(folded: &str) -> bool {
    folded.bytes().any(|b| b.is_ascii_digit())
}

/// `cinq cent vingt` → 520, `douze cent cinquante` → 1250, `quatre cinq` → 45.
fn number_value(words: &[&str]) -> Option<u32> {
    let mut total: u32 = 0;
    let mut current: u32 = 0;
    let mut last: Option<u32> = None;
    let mut any = false;
    for word in words.iter().flat_map(|w| w.split('-')) {
        if matches!(word, "et" | "and" | "") {
            continue;
        }
        let value = number_word(word)?;
        any = true;
        match value {
            1000 => {
                total = total.checked_add(current.max(1).checked_mul(1000)?)?;
                current = 0;
            }
            100 => current = current.max(1).checked_mul(100)?,
            20 if last == Some(4) => current = current.saturating_sub(4).saturating_add(80),
            0..=9 if last.is_some_and(|l| l < 10) => {
                current = current.checked_mul(10)?.checked_add(value)?;
            }
            _ => current = current.checked_add(value)?,
        }
        last = Some(value);
    }
    any.then(|| total.saturating_add(current))
}

/// Words (folded) that name a street.
const STREET_WORDS: &[&str] = &[
    "rue",
    "boulevard",
    "boul",
    "blvd",
    "avenue",
    "ave",
    "av",
    "chemin",
    "ch",
    "rang",
    "route",
    "montee",
    "place",
    "croissant",
    "cote",
    "allee",
    "impasse",
    "promenade",
    "terrasse",
    "carre",
    "autoroute",
    "street",
    "st",
    "road",
    "rd",
    "drive",
    "dr",
    "lane",
    "crescent",
    "court",
    "way",
    "highway",
    "concession",
    "circle",
    "parkway",
];

/// Street words said before the street's name (« rue King »), never after it.
const FRENCH_STREET_WORDS: &[&str] = &[
    "rue",
    "chemin",
    "ch",
    "rang",
    "route",
    "montee",
    "cote",
    "allee",
    "impasse",
    "promenade",
    "terrasse",
    "carre",
    "croissant",
    "autoroute",
    "boul",
];

/// Words (folded) that end an address said inside a sentence.
const ADDRESS_STOPS: &[&str] = &[
    "j'ai",
    "j'aurais",
    "j'appelle",
    "j'ai",
    "je",
    "pis",
    "puis",
    "et",
    "mon",
    "ma",
    "mes",
    "c'est",
    "c'tait",
    "il",
    "y",
    "pour",
    "parce",
    "pas",
    "svp",
    "merci",
    "my",
    "and",
    "i",
    "i'm",
    "i'd",
    "it's",
    "it",
    "for",
    "because",
    "please",
    "thanks",
    "thank",
    "avec",
    "with",
    "qui",
    "que",
    "on",
    "nous",
    "vous",
    "number",
    "numero",
    "telephone",
    "phone",
    "urgent",
    "we",
    "there",
    "not",
];

/// Words (folded) for an apartment before the civic number: « appartement 12, 800 boulevard … ».
const APARTMENT_WORDS: &[&str] = &[
    "appartement",
    "app",
    "apt",
    "apartment",
    "unit",
    "unite",
    "suite",
    "logement",
];

/// A found value and the words it covered.
#[derive(Debug, Clone)]
struct Span<T> {
    value: T,
    from: usize,
    to: usize,
}

fn civic_digits(raw: &str) -> bool {
    let t = raw.trim_end_matches([',', '.']);
    let digits = t.chars().filter(char::is_ascii_digit).count();
    (1..=6).contains(&digits)
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && t.chars().filter(char::is_ascii_alphabetic).count() <= 1
}

fn find_phone(words: &[Word<'_>]) -> Option<Span<(PhoneNumber, String)>> {
    let mut at = 0;
    while at < words.len() {
        if !numberish(&words[at].folded) || matches!(words[at].folded.as_str(), "et" | "and") {
            at += 1;
            continue;
        }
        let mut end = at;
        while end < words.len() && end - at < 40 && numberish(&words[end].folded) {
            end += 1;
        }
        let raw = words[at..end]
            .iter()
            .map(|w| w.raw)
            .collect::<Vec<_>>()
            .join(" ");
        if let Ok(number) = PhoneNumber::try_from(raw.as_str()) {
            let raw = raw.trim_end_matches([',', '.', '?', '!']).to_owned();
            return Some(Span {
                value: (number, raw),
                from: at,
                to: end,
            });
        }
        at = end.max(at + 1);
    }
    None
}

fn find_address(words: &[Word<'_>], phone: Option<(usize, usize)>) -> Option<Span<Address>> {
    let in_phone = |i: usize| phone.is_some_and(|(f, t)| (f..t).contains(&i));
    for at in 0..words.len() {
        if in_phone(at) {
            continue;
        }
        // The civic number: written digits, or number words turned into digits.
        let (civic, after) = if civic_digits(words[at].raw) {
            (
                words[at].raw.trim_end_matches([',', '.']).to_owned(),
                at + 1,
            )
        } else if !has_digit(&words[at].folded)
            && numberish(&words[at].folded)
            && !matches!(words[at].folded.as_str(), "et" | "and" | "oh")
        {
            let mut end = at;
            while end < words.len() && end - at < 8 && numberish(&words[end].folded) {
                end += 1;
            }
            let folded: Vec<&str> = words[at..end].iter().map(|w| w.folded.as_str()).collect();
            let single_article = end - at == 1 && matches!(folded[0], "un" | "une" | "one");
            match number_value(&folded) {
                Some(n) if (1..=99_999).contains(&n) && !single_article => (n.to_string(), end),
                _ => continue,
            }
        } else {
            continue;
        };
        // A street word right after the number (« 45 rue King »), or after the street's name
        // ("55 Maple Street"): never after other words (« 2 arbres sur la rue »).
        let street = (after..words.len().min(after + 4))
            .take_while(|&i| !numberish(&words[i].folded) && !in_phone(i))
            .take_while(|&i| {
                i == after
                    || STREET_WORDS.contains(&words[i].folded.as_str())
                    || (name_word(&words[i])
                        && !FRENCH_STREET_WORDS.contains(&words[i].folded.as_str()))
            })
            .find(|&i| {
                let word = words[i].folded.as_str();
                STREET_WORDS.contains(&word) && (i == after || !FRENCH_STREET_WORDS.contains(&word))
            });
        let Some(_street) = street else {
            continue;
        };
        let mut end = after;
        while end < words.len() && end - at < 16 && !in_phone(end) {
            let w = &words[end];
            if ADDRESS_STOPS.contains(&w.folded.as_str())
                || (w.folded.starts_with("j'") && end > after)
            {
                break;
            }
            end += 1;
            if w.raw.ends_with(['.', '?', '!']) {
                break;
            }
        }
        let mut text = std::iter::once(civic.as_str())
            .chain(words[after..end].iter().map(|w| w.raw))
            .collect::<Vec<_>>()
            .join(" ");
        // Drop connectors left dangling at the end (« au 45 rue King à », "in").
        let mut from = at;
        if at >= 2
            && APARTMENT_WORDS.contains(&words[at - 2].folded.as_str())
            && numberish(&words[at - 1].folded)
        {
            let apartment = format!(
                "{} {}",
                words[at - 2].raw,
                words[at - 1].raw.trim_end_matches([',', '.'])
            );
            text = format!(
                "{}, {apartment}",
                text.trim_end_matches([',', '.', ' ', '?', '!'])
            );
            from = at - 2;
        }
        if let Ok(address) = Address::try_from(text.as_str()) {
            return Some(Span {
                value: address,
                from,
                to: end,
            });
        }
    }
    None
}

/// Greetings and acknowledgements a name may follow.
const GREETINGS: &[&str] = &[
    "bonjour",
    "bonsoir",
    "allo",
    "salut",
    "oui",
    "hi",
    "hello",
    "hey",
    "yes",
    "yeah",
    "ok",
    "okay",
    "good",
    "morning",
    "afternoon",
];

/// Lead-ins that announce a name anywhere in the sentence.
const STRONG_NAME_LEAD_INS: &[&str] = &[
    "je m'appelle",
    "je me nomme",
    "mon nom complet c'est",
    "mon nom complet est",
    "mon nom c'est",
    "mon nom est",
    "le nom c'est",
    "my full name is",
    "my name is",
    "my name's",
    "the name is",
    "name's",
];

/// Lead-ins that announce a name only at the start (after a greeting).
const WEAK_NAME_LEAD_INS: &[&str] = &[
    "moi c'est",
    "c'est",
    "ici",
    "this is",
    "it's",
    "it is",
    "i'm",
    "i am",
];

/// Words (folded) that end a name inside a sentence, or can never be part of one.
const NAME_STOPS: &[&str] = &[
    "j'ai",
    "j'aurais",
    "j'appelle",
    "je",
    "j",
    "pis",
    "puis",
    "et",
    "and",
    "au",
    "a",
    "at",
    "in",
    "on",
    "mon",
    "ma",
    "mes",
    "my",
    "i",
    "i'm",
    "i'd",
    "c'est",
    "il",
    "y",
    "pour",
    "for",
    "from",
    "qui",
    "que",
    "with",
    "avec",
    "here",
    "ici",
    "pas",
    "not",
    "urgent",
    "urgence",
    "svp",
    "merci",
    "thanks",
    "thank",
    "the",
    "an",
    "un",
    "une",
    "vous",
    "etes",
    "est",
    "quelle",
    "quel",
    "heure",
    "ca",
    "sa",
    "bon",
    "correct",
    "tout",
    "what",
    "how",
    "do",
    "you",
    "is",
    "are",
    "can",
    "we",
    "our",
    "need",
    "besoin",
    "appelle",
    "calling",
    "call",
    "chez",
    "numero",
    "number",
    "adresse",
    "address",
    "please",
    "oui",
    "non",
    "yes",
    "no",
    "ok",
    "okay",
    "right",
    "exact",
    "exactement",
    "voila",
    "dans",
    "sur",
    "sous",
    "parce",
    "because",
    "there",
    "it",
    "it's",
    "this",
    "that",
    "c'tait",
    "was",
    "nous",
    "plutot",
    "rather",
    "instead",
    "aussi",
    "also",
    "encore",
];

/// Service words that are never part of a name (folded).
const SERVICE_WORDS: &[&str] = &[
    "elagage",
    "elaguer",
    "emondage",
    "emonder",
    "abattage",
    "abattre",
    "essouchement",
    "souche",
    "souches",
    "haie",
    "haies",
    "arbre",
    "arbres",
    "branche",
    "branches",
    "tempete",
    "plantation",
    "planter",
    "evaluation",
    "estimation",
    "soumission",
    "taille",
    "tailler",
    "couper",
    "tombe",
    "tombee",
    "tree",
    "trees",
    "stump",
    "stumps",
    "hedge",
    "hedges",
    "branch",
    "pruning",
    "prune",
    "removal",
    "storm",
    "fell",
    "fallen",
    "trimming",
    "cut",
    "quote",
    "assessment",
    "planting",
    "deneigement",
    "snow",
];

/// True when `input` has a service word (élagage, arbre, souche, "tree"…).
pub fn has_service_word(input: &str) -> bool {
    fold(input)
        .split([' ', '\'', '-'])
        .any(|w| SERVICE_WORDS.contains(&w))
}

/// True when `input` contains a street address (a civic number and a street word).
pub fn has_street_address(input: &str) -> bool {
    let words = split(input);
    find_address(&words, None).is_some()
}

const PARTICLES: &[&str] = &[
    "de", "du", "des", "la", "le", "van", "von", "der", "da", "di",
];

fn name_word(w: &Word<'_>) -> bool {
    let f = w.folded.as_str();
    !f.is_empty()
        && !NAME_STOPS.contains(&f)
        && !f
            .split(['\'', '-'])
            .any(|part| SERVICE_WORDS.contains(&part) || NAME_STOPS.contains(&part))
        && number_word(f).is_none()
        && f.chars()
            .all(|c| c.is_alphabetic() || c == '-' || c == '\'')
        && w.raw
            .trim_end_matches([',', '.', '!', '?'])
            .chars()
            .all(|c| c.is_alphabetic() || c == '-' || c == '\'' || c == '’')
}

/// The name words starting at `at`: at most four, stopping at a stop word or after a comma.
fn name_words(words: &[Word<'_>], at: usize) -> Option<(PersonName, usize)> {
    let mut end = at;
    while end < words.len() && end - at < 4 {
        let w = &words[end];
        let particle = PARTICLES.contains(&w.folded.as_str());
        if particle {
            // « Jean de la Fontaine »: a particle only between name words.
            let next_is_name = words
                .get(end + 1)
                .is_some_and(|n| name_word(n) || PARTICLES.contains(&n.folded.as_str()));
            if end == at || !next_is_name {
                break;
            }
        } else if !name_word(w) {
            break;
        }
        end += 1;
        if w.raw.ends_with([',', '.', '!', '?']) {
            break;
        }
    }
    if end == at {
        return None;
    }
    let joined = words[at..end]
        .iter()
        .map(|w| w.raw.trim_end_matches([',', '.', '!', '?']))
        .collect::<Vec<_>>()
        .join(" ");
    PersonName::try_from(joined.as_str())
        .ok()
        .map(|name| (name, end))
}

fn find_name(words: &[Word<'_>]) -> Option<Span<PersonName>> {
    let mut start = 0;
    while start < words.len()
        && (GREETINGS.contains(&words[start].folded.as_str())
            || FILLERS.contains(&words[start].folded.as_str()))
    {
        start += 1;
    }
    // « je m'appelle … » anywhere; « c'est … » only at the start.
    for at in 0..words.len() {
        let lead_in = STRONG_NAME_LEAD_INS
            .iter()
            .chain(if at == start { WEAK_NAME_LEAD_INS } else { &[] })
            .find_map(|p| phrase_at(words, at, p));
        if let Some(len) = lead_in {
            let mut from = at + len;
            while from < words.len() && HESITATIONS.contains(&words[from].folded.as_str()) {
                from += 1;
            }
            if let Some((name, to)) = name_words(words, from) {
                return Some(Span {
                    value: name,
                    from: at,
                    to,
                });
            }
        }
    }
    // "Tom Baker here", « Julie Tremblay ici »; « Bonjour, Catherine Lavoie, j'aurais… ».
    if let Some((name, end)) = name_words(words, start) {
        let here = words
            .get(end)
            .is_some_and(|w| matches!(w.folded.as_str(), "here" | "ici"));
        let after_greeting = start > 0
            && words[start - 1].raw.ends_with(',')
            && words[end - 1].raw.ends_with(',')
            && words[start..end].iter().all(|w| {
                PARTICLES.contains(&w.folded.as_str())
                    || w.raw.chars().next().is_some_and(char::is_uppercase)
            });
        if here || after_greeting {
            return Some(Span {
                value: name,
                from: start,
                to: end + usize::from(here),
            });
        }
    }
    None
}

/// Phrases that make the job urgent, and those that say it can wait (folded).
const URGENT_CUES: &[&str] = &[
    "c'est urgent",
    "tres urgent",
    "urgent",
    "urgente",
    "une urgence",
    "au plus vite",
    "le plus vite possible",
    "des que possible",
    "le plus tot possible",
    "tout de suite",
    "asap",
    "emergency",
    "as soon as possible",
    "right away",
];

const CALM_CUES: &[&str] = &[
    "pas urgent",
    "pas vraiment urgent",
    "pas si urgent",
    "pas tres urgent",
    "pas d'urgence",
    "aucune urgence",
    "pas presse",
    "pas pressant",
    "pas de presse",
    "pas de rush",
    "peut attendre",
    "not urgent",
    "not an emergency",
    "no rush",
    "no hurry",
    "can wait",
];

/// Whether the caller said, unprompted, that it is urgent or that it can wait.
pub fn urgency_cue(input: &str) -> Option<bool> {
    let folded = fold(input);
    if CALM_CUES.iter().any(|c| contains_phrase(&folded, c)) {
        return Some(false);
    }
    URGENT_CUES
        .iter()
        .any(|c| contains_phrase(&folded, c))
        .then_some(true)
}

/// A question the caller asks instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Price,
    Hours,
    /// What BP Émondage does; `snow` when the caller asked about snow removal.
    Services {
        snow: bool,
    },
}

/// The question the caller asked, if the utterance is one (a question mark, or an interrogative).
pub fn caller_question(input: &str) -> Option<Question> {
    let folded = fold(input);
    let has = |phrases: &[&str]| phrases.iter().any(|p| contains_phrase(&folded, p));
    let interrogative = input.contains('?')
        || has(&[
            "combien",
            "est-ce que",
            "est ce que",
            "quel",
            "quelle",
            "quels",
            "quelles",
            "how",
            "what",
            "when",
            "do you",
            "does",
            "are you",
            "faites-vous",
            "faites vous",
            "vous faites",
            "offrez-vous",
            "offrez vous",
            "vous offrez",
            "c'est combien",
        ]);
    if !interrogative {
        return None;
    }
    if has(&[
        "combien", "prix", "coute", "couter", "cout", "couts", "tarif", "tarifs", "frais",
        "how much", "price", "prices", "cost", "costs", "rates", "fee", "fees",
    ]) {
        return Some(Question::Price);
    }
    let snow = has(&[
        "deneigement",
        "deneiger",
        "neige",
        "snow",
        "plow",
        "plowing",
    ]);
    if snow
        || has(&[
            "quels services",
            "quel service",
            "what services",
            "what service",
            "vous offrez",
            "offrez-vous",
            "offrez vous",
            "what do you do",
            "do you offer",
        ])
    {
        return Some(Question::Services { snow });
    }
    if has(&[
        "heure", "heures", "horaire", "horaires", "ouvert", "ouverts", "ouverte", "fermez",
        "fermes", "hours", "open", "close", "closed",
    ]) {
        return Some(Question::Hours);
    }
    None
}

/// Connectors trimmed off the ends of a story kept as the description.
const STORY_EDGES: &[&str] = &[
    "au", "a", "at", "in", "on", "pis", "puis", "et", "and", "c'est", "bonjour", "allo", "oui",
    "hi", "hello", "donc", "alors", "so", "mais", "but",
];

/// Everything one utterance says, field by field.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    pub name: Option<PersonName>,
    pub phone: Option<(PhoneNumber, String)>,
    pub address: Option<Address>,
    /// A service matched by its rules (never `autre`).
    pub service: Option<ServiceType>,
    /// The part of the utterance that tells the job, when it names a service.
    pub story: Option<Description>,
    pub urgency: Option<bool>,
    /// The words no name, phone number or address covered.
    pub residual: String,
}

impl Heard {
    /// A value for a field other than the description and the urgency: a name, a phone number,
    /// an address or a service named as such.
    pub fn names_a_field(&self) -> bool {
        self.name.is_some()
            || self.phone.is_some()
            || self.address.is_some()
            || ServiceType::named(&self.residual).is_some()
    }
}

/// Listens to the whole utterance.
pub fn hear(input: &str) -> Heard {
    let words = split(input);
    let phone = find_phone(&words);
    let address = find_address(&words, phone.as_ref().map(|s| (s.from, s.to)));
    let name = find_name(&words).filter(|n| {
        // Never a name inside the phone number or the address.
        let overlaps = |s: usize, e: usize| n.from < e && s < n.to;
        !phone.as_ref().is_some_and(|p| overlaps(p.from, p.to))
            && !address.as_ref().is_some_and(|a| overlaps(a.from, a.to))
    });
    let covered = |i: usize| {
        phone.as_ref().is_some_and(|s| (s.from..s.to).contains(&i))
            || address
                .as_ref()
                .is_some_and(|s| (s.from..s.to).contains(&i))
            || name.as_ref().is_some_and(|s| (s.from..s.to).contains(&i))
    };
    // Segments of uncovered words, in order.
    let mut segments: Vec<Vec<&Word<'_>>> = Vec::new();
    let mut current: Vec<&Word<'_>> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if covered(i) {
            if !current.is_empty() {
                segments.push(std::mem::take(&mut current));
            }
        } else {
            current.push(w);
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    let residual = segments
        .iter()
        .map(|s| s.iter().map(|w| w.raw).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" ");
    let service = ServiceType::mentioned(&residual);
    // The story: the longest segment that names a service, its connectors trimmed.
    let story = segments
        .iter()
        .map(|segment| {
            let mut s: &[&Word<'_>] = segment;
            while let [first, rest @ ..] = s {
                if STORY_EDGES.contains(&first.folded.as_str())
                    || FILLERS.contains(&first.folded.as_str())
                    || first.folded.is_empty()
                {
                    s = rest;
                } else {
                    break;
                }
            }
            while let [rest @ .., last] = s {
                if STORY_EDGES.contains(&last.folded.as_str()) || last.folded.is_empty() {
                    s = rest;
                } else {
                    break;
                }
            }
            s.iter()
                .map(|w| w.raw)
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end_matches([',', '.'])
                .to_owned()
        })
        .filter(|text| {
            text.split_whitespace().count() >= 4 && ServiceType::mentioned(text).is_some()
        })
        .max_by_key(|text| text.split_whitespace().count())
        .and_then(|text| Description::try_from(text.as_str()).ok());
    Heard {
        name: name.map(|s| s.value),
        phone: phone.map(|s| s.value),
        address: address.map(|s| s.value),
        service,
        story,
        urgency: urgency_cue(&residual),
        residual,
    }
}

/// Words (folded) a name never has.
const NEVER_IN_A_NAME: &[&str] = &[
    "vous", "etes", "quelle", "quel", "heure", "pour", "avec", "dans", "sur", "mon", "ma", "mes",
    "j", "ai", "il", "elle", "nous", "pas", "the", "is", "are", "for", "with", "my", "what", "how",
    "you", "can", "urgent", "urgence", "attendez", "wait", "rue", "street", "un", "une", "est",
    "c", "qu", "que", "qui", "it", "its", "a", "an", "of", "to", "and", "et", "pis", "ou", "or",
    "ca", "peut", "attendre", "vraiment", "presse", "correct", "rush", "merci", "oui", "non",
];

/// Words (folded) a name does not start with.
const ARTICLES: &[&str] = &[
    "le", "la", "les", "l", "un", "une", "des", "du", "de", "the", "a", "an", "mon", "ma", "mes",
    "my", "son", "sa", "ses", "ce", "cet", "cette",
];

/// True when `name`, parsed from `input` said alone at the name question, looks like a name: no
/// service word or street address in what was said, at most five words, not starting with an
/// article, none of the words a name never has (« vous », « quelle », "what"…).
pub fn plausible_name(name: &PersonName, input: &str) -> bool {
    let folded = fold(name.as_str());
    let words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    !has_service_word(input)
        && !has_street_address(input)
        && words.len() <= 5
        && words.first().is_some_and(|first| !ARTICLES.contains(first))
        && !folded
            .split([' ', '\'', '-'])
            .any(|w| NEVER_IN_A_NAME.contains(&w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_story_in_one_breath() {
        let heard = hear(
            "Bonjour c'est Julie Tremblay, j'ai un arbre tombé sur ma maison au 45 rue King Ouest \
             à Sherbrooke",
        );
        assert_eq!(heard.name.unwrap().as_str(), "Julie Tremblay");
        assert_eq!(
            heard.address.unwrap().as_str(),
            "45 rue King Ouest à Sherbrooke"
        );
        assert_eq!(heard.service, Some(ServiceType::UrgenceTempete));
        assert_eq!(
            heard.story.unwrap().as_str(),
            "j'ai un arbre tombé sur ma maison"
        );
        assert_eq!(heard.phone, None);
    }

    #[test]
    fn numbers_in_words_and_apartments() {
        assert_eq!(number_value(&["cinq", "cent", "vingt"]), Some(520));
        assert_eq!(number_value(&["douze", "cent", "cinquante"]), Some(1250));
        assert_eq!(number_value(&["quatre", "vingt", "deux"]), Some(82));
        assert_eq!(number_value(&["quatre", "cinq"]), Some(45));
        assert_eq!(number_value(&["mille", "deux"]), Some(1002));
        let heard = hear("appartement 12, 800 boulevard René-Lévesque, Québec");
        assert_eq!(
            heard.address.unwrap().as_str(),
            "800 boulevard René-Lévesque, Québec, appartement 12"
        );
        assert!(hear("j'ai 2 arbres sur la rue à couper").address.is_none());
        assert!(hear("il y a 3 branches dans la cour").address.is_none());
        assert_eq!(
            hear("it's at 2100 Decarie Boulevard")
                .address
                .unwrap()
                .as_str(),
            "2100 Decarie Boulevard"
        );
        let heard = hear("cinq cent vingt rue Principale, Rimouski");
        assert_eq!(
            heard.address.unwrap().as_str(),
            "520 rue Principale, Rimouski"
        );
    }

    #[test]
    fn corrections_are_announced() {
        let lead = correction_lead("Non attendez, c'est 520 rue Principale, pas 250");
        assert!(lead.correcting && lead.said_no);
        assert_eq!(lead.rest, "c'est 520 rue Principale, pas 250");
        assert_eq!(
            hear(&lead.rest).address.unwrap().as_str(),
            "520 rue Principale"
        );
        let lead = correction_lead("non");
        assert!(!lead.correcting && lead.said_no && lead.rest.is_empty());
    }

    #[test]
    fn questions() {
        assert_eq!(
            caller_question("combien ça coûte pour couper un arbre?"),
            Some(Question::Price)
        );
        assert_eq!(
            caller_question("vous êtes ouverts jusqu'à quelle heure?"),
            Some(Question::Hours)
        );
        assert_eq!(
            caller_question("est-ce que vous faites du déneigement?"),
            Some(Question::Services { snow: true })
        );
        assert_eq!(caller_question("Marie Tremblay"), None);
        assert_eq!(caller_question("un gros érable mort"), None);
    }

    #[test]
    fn never_panics() {
        for input in [
            "",
            " ",
            "-",
            "mille mille mille mille mille",
            "4 4 4 4 rue",
            "au rue 4",
        ] {
            let _ = hear(input);
            let _ = correction_lead(input);
            let _ = caller_question(input);
        }
    }
}
