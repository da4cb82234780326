//! `PhoneNumber`: a valid North American number in E.164 (`+1XXXXXXXXXX`).
//!
//! Parsed from what a caller says or types: any NANP layout (`(514) 555-1234`, `1 514 555 1234`,
//! `+1 514 555 1234` …) and digits spoken in French or English words, including French and English
//! tens and hundreds (`cinq cent quatorze`, `douze trente-quatre`, `double five`). Where the words
//! can be grouped in more than one way (`quatre vingt` is 80 or 4 then 20), every grouping is tried:
//! exactly one valid number is accepted; several are ambiguous and rejected, so Myriam asks again.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text;

/// A valid NANP number, E.164. Matches `^\+1[2-9]\d{2}[2-9]\d{6}$` by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a phone answer was not accepted. Carries what was understood, for the re-ask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPhoneNumber {
    #[error("no digits were understood")]
    NoDigits,
    #[error("understood {digits} digits, not a North American number")]
    NotNanp { digits: String },
    #[error("the words can be read as more than one number")]
    Ambiguous { candidates: Vec<String> },
}

impl InvalidPhoneNumber {
    /// The digits understood, if any (for "J'ai compris …").
    pub fn understood(&self) -> Option<&str> {
        match self {
            InvalidPhoneNumber::NotNanp { digits } => Some(digits),
            InvalidPhoneNumber::Ambiguous { candidates } => candidates.first().map(String::as_str),
            InvalidPhoneNumber::NoDigits => None,
        }
    }
}

impl PhoneNumber {
    /// `+15145551234`.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The ten national digits, `5145551234`.
    pub fn national_digits(&self) -> &str {
        &self.0[2..]
    }

    /// As people read it: `514 555-0199` for a Canadian or US number, otherwise (the Caribbean
    /// countries sharing the code 1) `phonenumber`'s international format, `+1 876-555-0142`.
    pub fn readable(&self) -> String {
        let d = self.national_digits();
        let international = phonenumber::parse(None, &self.0)
            .ok()
            .and_then(|parsed| match parsed.country().id() {
                Some(phonenumber::country::Id::CA | phonenumber::country::Id::US) => None,
                _ => Some(
                    parsed
                        .format()
                        .mode(phonenumber::Mode::International)
                        .to_string(),
                ),
            });
        international.unwrap_or_else(|| format!("{} {}-{}", &d[..3], &d[3..6], &d[6..]))
    }

    /// For text-to-speech, digit by digit in three groups: `5 1 4, 5 5 5, 1 2 3 4`.
    pub fn spoken(&self) -> String {
        spoken_digits(self.national_digits())
    }

    /// Builds the numbering-plan metadata now. `phonenumber` builds its database on first use
    /// (≈ 70 ms of regex compilation in a release build, measured with `perf` on the bridge
    /// benchmark): done at start-up, the first caller's webhook does not stall every call already
    /// streaming on the runtime's thread.
    pub fn load_metadata() {
        let loaded = Self::from_digits("5145550199").is_some();
        debug_assert!(loaded, "a valid Montréal number parses");
    }

    /// Validates a digit string: 10 digits, or 11 starting with the country code 1.
    fn from_digits(digits: &str) -> Option<Self> {
        let national = match digits.len() {
            10 => digits,
            11 if digits.starts_with('1') => &digits[1..],
            _ => return None,
        };
        let b = national.as_bytes();
        // NANP: area code and exchange start with 2-9.
        if !(b'2'..=b'9').contains(&b[0]) || !(b'2'..=b'9').contains(&b[3]) {
            return None;
        }
        in_numbering_plan(national).then(|| Self(format!("+1{national}")))
    }
}

/// How many numbering-plan answers [`in_numbering_plan`] remembers before it starts afresh.
const PLAN_MEMO: usize = 4096;

/// The answers [`in_numbering_plan`] remembers, by the ten digits as a number.
static PLAN_ANSWERS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<u64, bool>>> =
    std::sync::LazyLock::new(Default::default);

/// Whether `phonenumber` holds `national` (ten digits, shape already checked) to be a valid North
/// American number. The answer depends on the digits alone, so it is remembered: the same number
/// is checked again every time its lead is read back from the store (each IVR answer, each stream
/// start), and the library's check is regex work (≈ 6 % of the gateway's CPU in the bridge
/// benchmark's set-up burst). A bounded table, emptied when full: answers for numbers that keep
/// changing (misheard digits) cannot grow it.
fn in_numbering_plan(national: &str) -> bool {
    let Ok(key) = national.parse::<u64>() else {
        return false;
    };
    // A poisoned table only lost a remembered answer; the check itself is pure.
    let remembered = PLAN_ANSWERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        .copied();
    if let Some(valid) = remembered {
        return valid;
    }
    let valid = numbering_plan_check(national);
    let mut memo = PLAN_ANSWERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if memo.len() >= PLAN_MEMO {
        memo.clear();
    }
    memo.insert(key, valid);
    valid
}

/// `phonenumber`'s own answer, every time.
fn numbering_plan_check(national: &str) -> bool {
    phonenumber::parse(Some(phonenumber::country::Id::CA), format!("+1{national}"))
        .is_ok_and(|parsed| parsed.code().value() == 1 && phonenumber::is_valid(&parsed))
}

/// Digits grouped for speech: `514 555 1234` → `5 1 4, 5 5 5, 1 2 3 4`.
pub fn spoken_digits(digits: &str) -> String {
    let digits: Vec<char> = digits.chars().filter(char::is_ascii_digit).collect();
    let groups: Vec<&[char]> = if digits.len() == 10 {
        vec![&digits[..3], &digits[3..6], &digits[6..]]
    } else if digits.len() == 11 {
        vec![&digits[..1], &digits[1..4], &digits[4..7], &digits[7..]]
    } else {
        digits.chunks(3).collect()
    };
    groups
        .iter()
        .map(|g| g.iter().map(char::to_string).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TryFrom<&str> for PhoneNumber {
    type Error = InvalidPhoneNumber;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        let tokens = tokenize(input);
        if tokens.toks.len() > MAX_TOKENS {
            // Far longer than any phone number: report the plain digits, never search.
            let digits: String = tokens.digits.chars().take(20).collect();
            return Err(if digits.is_empty() {
                InvalidPhoneNumber::NoDigits
            } else {
                InvalidPhoneNumber::NotNanp { digits }
            });
        }
        let readings = readings(&tokens);
        let Some(primary) = readings.first() else {
            return Err(InvalidPhoneNumber::NoDigits);
        };
        if primary.is_empty() {
            return Err(InvalidPhoneNumber::NoDigits);
        }
        let mut valid: Vec<PhoneNumber> = Vec::new();
        for reading in &readings {
            if let Some(number) = PhoneNumber::from_digits(reading) {
                if !valid.contains(&number) {
                    valid.push(number);
                }
            }
        }
        match valid.len() {
            1 => Ok(valid.remove(0)),
            0 => Err(InvalidPhoneNumber::NotNanp {
                digits: primary.clone(),
            }),
            _ => Err(InvalidPhoneNumber::Ambiguous {
                candidates: valid
                    .into_iter()
                    .map(|n| n.national_digits().to_owned())
                    .collect(),
            }),
        }
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidPhoneNumber;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Stored values are E.164 already; this path re-validates them.
        PhoneNumber::try_from(s.as_str())
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One spoken or written piece of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// Written digits, `514`.
    Digits(usize, usize),
    /// A spoken digit 0-9. `zero` never combines with what follows.
    Unit(u16),
    Zero,
    /// 10-19.
    Teen(u16),
    /// 20, 30 … 90.
    Tens(u16),
    Hundred,
    /// `et` / `and` inside `vingt et un`.
    And,
    /// `double` / `triple` before a digit.
    Repeat(u8),
    /// Anything else: breaks a spoken compound.
    Break,
}

struct Tokens {
    toks: Vec<Tok>,
    /// `joined[i]`: token `i` was hyphenated to the previous one.
    joined: Vec<bool>,
    digits: String,
}

fn word_value(word: &str) -> Option<Tok> {
    Some(match word {
        "zero" | "oh" => Tok::Zero,
        "un" | "une" | "one" => Tok::Unit(1),
        "deux" | "two" => Tok::Unit(2),
        "trois" | "three" => Tok::Unit(3),
        "quatre" | "four" => Tok::Unit(4),
        "cinq" | "five" => Tok::Unit(5),
        "six" => Tok::Unit(6),
        "sept" | "seven" => Tok::Unit(7),
        "huit" | "eight" => Tok::Unit(8),
        "neuf" | "nine" => Tok::Unit(9),
        "dix" | "ten" => Tok::Teen(10),
        "onze" | "eleven" => Tok::Teen(11),
        "douze" | "twelve" => Tok::Teen(12),
        "treize" | "thirteen" => Tok::Teen(13),
        "quatorze" | "fourteen" => Tok::Teen(14),
        "quinze" | "fifteen" => Tok::Teen(15),
        "seize" | "sixteen" => Tok::Teen(16),
        "seventeen" => Tok::Teen(17),
        "eighteen" => Tok::Teen(18),
        "nineteen" => Tok::Teen(19),
        "vingt" | "vingts" | "twenty" => Tok::Tens(20),
        "trente" | "thirty" => Tok::Tens(30),
        "quarante" | "forty" => Tok::Tens(40),
        "cinquante" | "fifty" => Tok::Tens(50),
        "soixante" | "sixty" => Tok::Tens(60),
        "septante" | "seventy" => Tok::Tens(70),
        "huitante" | "octante" | "eighty" => Tok::Tens(80),
        "nonante" | "ninety" => Tok::Tens(90),
        "cent" | "cents" | "hundred" => Tok::Hundred,
        "et" | "and" => Tok::And,
        "double" => Tok::Repeat(2),
        "triple" => Tok::Repeat(3),
        _ => return None,
    })
}

/// Words and written digits, in order. Written digit runs are kept whole (`514-555-1234` is three
/// runs); punctuation between spoken words breaks compounds (`quatre, vingt-deux` is 4 then 22).
fn tokenize(input: &str) -> Tokens {
    let mut toks = Vec::new();
    let mut joined = Vec::new();
    let mut digits = String::new();
    // Split on sentence punctuation first (a break between spoken numbers), then fold each piece:
    // `text::fold` keeps only letters, digits, spaces, apostrophes and hyphens.
    for piece in input.split([',', '.', ';', ':', '!', '?']).map(text::fold) {
        for spaced in piece.split(' ') {
            for (i, word) in spaced.split('-').flat_map(|w| w.split('\'')).enumerate() {
                if word.is_empty() {
                    continue;
                }
                let tok = if word.bytes().all(|b| b.is_ascii_digit()) {
                    let start = digits.len();
                    digits.push_str(word);
                    Tok::Digits(start, digits.len())
                } else if let Some(tok) = word_value(word) {
                    tok
                } else if word.bytes().any(|b| b.is_ascii_digit()) {
                    // `514x` or `1er`: keep the digits, break the compound.
                    let start = digits.len();
                    digits.extend(word.chars().filter(char::is_ascii_digit));
                    Tok::Digits(start, digits.len())
                } else if toks.last() == Some(&Tok::Break) {
                    continue;
                } else {
                    Tok::Break
                };
                toks.push(tok);
                // `vingt-deux`: parts of one hyphenated word always combine when they can.
                joined.push(i > 0);
            }
        }
        if toks.last() != Some(&Tok::Break) {
            toks.push(Tok::Break);
            joined.push(false);
        }
    }
    Tokens {
        toks,
        joined,
        digits,
    }
}

/// A spoken compound being built: its value and what its last word was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Unit,
    Teen,
    Tens,
    Hundred,
    And,
}

#[derive(Debug, Clone, Copy)]
struct Compound {
    value: u16,
    last: Last,
}

/// Longest answer (in number words and breaks) searched for readings; a phone number spoken word
/// by word with fillers fits well within it.
const MAX_TOKENS: usize = 64;

/// Most readings kept; past this, only the first (the grammatical one) counts.
const MAX_READINGS: usize = 64;

/// Every way of grouping the words into numbers, the grammatical reading first. Each reading is the
/// concatenated digit string.
fn readings(tokens: &Tokens) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    walk(tokens, 0, None, 1, &mut current, &mut out);
    out
}

/// Can `tok` extend `compound`? Returns the extended compound.
fn combine(compound: Compound, tok: Tok) -> Option<Compound> {
    let Compound { value, last } = compound;
    match (last, tok) {
        // vingt et un, soixante et onze
        (Last::Tens, Tok::And) if value % 100 >= 20 => Some(Compound {
            value,
            last: Last::And,
        }),
        (Last::And, Tok::Unit(1)) => Some(Compound {
            value: value + 1,
            last: Last::Unit,
        }),
        (Last::And, Tok::Teen(11)) if value % 100 == 60 => Some(Compound {
            value: value + 11,
            last: Last::Teen,
        }),
        // vingt-deux, cent deux, three hundred two
        (Last::Tens | Last::Hundred, Tok::Unit(u)) => Some(Compound {
            value: value + u,
            last: Last::Unit,
        }),
        // soixante-dix-sept, quatre-vingt-douze, cinq cent quatorze
        (Last::Tens, Tok::Teen(t)) if value % 100 == 60 || value % 100 == 80 => Some(Compound {
            value: value + t,
            last: Last::Teen,
        }),
        (Last::Hundred, Tok::Teen(t)) => Some(Compound {
            value: value + t,
            last: Last::Teen,
        }),
        // dix-sept, dix-huit, dix-neuf (also after soixante / quatre-vingt: 77, 98)
        (Last::Teen, Tok::Unit(u))
            if value % 100 == 10 || value % 100 == 70 || value % 100 == 90 =>
        {
            (7..=9).contains(&u).then_some(Compound {
                value: value + u,
                last: Last::Unit,
            })
        }
        // quatre-vingt(s)
        (Last::Unit, Tok::Tens(20)) if value == 4 => Some(Compound {
            value: 80,
            last: Last::Tens,
        }),
        // cinq cent …, deux cent …
        (Last::Hundred, Tok::Tens(t)) => Some(Compound {
            value: value + t,
            last: Last::Tens,
        }),
        (Last::Unit, Tok::Hundred) if (1..=9).contains(&value) => Some(Compound {
            value: value * 100,
            last: Last::Hundred,
        }),
        _ => None,
    }
}

fn start(tok: Tok) -> Option<Compound> {
    match tok {
        Tok::Unit(u) => Some(Compound {
            value: u,
            last: Last::Unit,
        }),
        Tok::Teen(t) => Some(Compound {
            value: t,
            last: Last::Teen,
        }),
        Tok::Tens(t) => Some(Compound {
            value: t,
            last: Last::Tens,
        }),
        Tok::Hundred => Some(Compound {
            value: 100,
            last: Last::Hundred,
        }),
        _ => None,
    }
}

fn flush(compound: Option<Compound>, current: &mut String) {
    if let Some(c) = compound {
        current.push_str(&c.value.to_string());
    }
}

fn walk(
    tokens: &Tokens,
    i: usize,
    compound: Option<Compound>,
    repeat: u8,
    current: &mut String,
    out: &mut Vec<String>,
) {
    if out.len() >= MAX_READINGS {
        return;
    }
    let Some(&tok) = tokens.toks.get(i) else {
        let mark = current.len();
        flush(compound, current);
        out.push(current.clone());
        current.truncate(mark);
        return;
    };
    let mark = current.len();
    match tok {
        Tok::Digits(a, b) => {
            flush(compound, current);
            current.push_str(&tokens.digits[a..b]);
            walk(tokens, i + 1, None, 1, current, out);
        }
        Tok::Zero => {
            flush(compound, current);
            for _ in 0..repeat {
                current.push('0');
            }
            walk(tokens, i + 1, None, 1, current, out);
        }
        Tok::Repeat(n) => {
            flush(compound, current);
            walk(tokens, i + 1, None, n, current, out);
        }
        Tok::Unit(u) if repeat > 1 => {
            flush(compound, current);
            for _ in 0..repeat {
                current.push_str(&u.to_string());
            }
            walk(tokens, i + 1, None, 1, current, out);
        }
        Tok::Break => {
            flush(compound, current);
            walk(tokens, i + 1, None, 1, current, out);
        }
        Tok::And if compound.is_none_or(|c| combine(c, tok).is_none()) => {
            // A stray `et` / `and` between digits means nothing.
            walk(tokens, i + 1, compound, 1, current, out);
        }
        _ => {
            // The grammatical reading first: extend the compound when the words allow it.
            if let Some(extended) = compound.and_then(|c| combine(c, tok)) {
                walk(tokens, i + 1, Some(extended), 1, current, out);
                if tokens.joined[i] {
                    // Hyphenated words are never split.
                    current.truncate(mark);
                    return;
                }
            }
            current.truncate(mark);
            // Then the reading that starts a new number here.
            flush(compound, current);
            walk(tokens, i + 1, start(tok), 1, current, out);
        }
    }
    current.truncate(mark);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_say_them() {
        let read = |s: &str| PhoneNumber::try_from(s).unwrap().readable();
        assert_eq!(read("+15145550199"), "514 555-0199");
        assert_eq!(read("(212) 555-0142"), "212 555-0142");
        assert_eq!(read("+1 876 555 0142"), "+1 876-555-0142");
    }

    fn e164(input: &str) -> Result<String, InvalidPhoneNumber> {
        PhoneNumber::try_from(input).map(|p| p.as_e164().to_owned())
    }

    #[test]
    fn the_remembered_numbering_plan_answer_is_the_librarys() {
        // Valid numbers, and shapes the library refuses (unassigned area codes, N11 codes).
        let numbers = [
            "5145554567",
            "4185550199",
            "6135550123",
            "2125550100",
            "5555550123",
            "3115550123",
            "9115550123",
            "2225550123",
            "8005550123",
            "9995550123",
        ];
        assert!(numbers.iter().any(|n| numbering_plan_check(n)));
        assert!(numbers.iter().any(|n| !numbering_plan_check(n)));
        for _ in 0..2 {
            for n in numbers {
                assert_eq!(in_numbering_plan(n), numbering_plan_check(n), "{n}");
            }
        }
    }

    #[test]
    fn the_remembered_answers_stay_bounded() {
        for n in 0..u64::try_from(PLAN_MEMO).unwrap() + 10 {
            let _ = in_numbering_plan(&format!("514{:07}", 2_000_000 + n));
            assert!(PLAN_ANSWERS.lock().unwrap().len() <= PLAN_MEMO);
        }
        assert_eq!(
            in_numbering_plan("5145554567"),
            numbering_plan_check("5145554567")
        );
    }

    #[test]
    fn written_layouts() {
        for input in [
            "(514) 555-4567",
            "514-555-4567",
            "5145554567",
            "1 514 555 4567",
            "+1 514 555 4567",
            "+1-514-555-4567",
            "514.555.4567",
            "mon numéro c'est le 514 555 4567",
            "euh 514 555 4567 merci",
        ] {
            assert_eq!(e164(input).as_deref(), Ok("+15145554567"), "{input}");
        }
    }

    #[test]
    fn spoken_french_digits_and_tens() {
        for (input, expected) in [
            (
                "cinq un quatre, cinq cinq cinq, quatre cinq six sept",
                "+15145554567",
            ),
            (
                "cinq un quatre cinq cinq cinq quatre cinq six sept",
                "+15145554567",
            ),
            (
                "cinq cent quatorze, cinq cinq cinq, douze trente-quatre",
                "+15145551234",
            ),
            (
                "quatre cent cinquante, deux deux deux, trois trois trois trois",
                "+14502223333",
            ),
            (
                "quatre cinq zéro deux deux deux trente-trois trente-trois",
                "+14502223333",
            ),
            (
                "huit un neuf, quatre vingt-dix-neuf, un, dix-sept, soixante et onze",
                "+18199911771",
            ),
            (
                "un, quatre un huit, six cinq un, quarante-deux quarante-deux",
                "+14186514242",
            ),
            (
                "quatre un huit, six cinq un, vingt et un vingt et un",
                "+14186512121",
            ),
        ] {
            assert_eq!(e164(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn spoken_english_digits() {
        for (input, expected) in [
            (
                "five one four five five five four five six seven",
                "+15145554567",
            ),
            (
                "five one four, double five five, four five six seven",
                "+15145554567",
            ),
            (
                "six one three, triple two, oh one two three",
                "+16132220123",
            ),
            (
                "my number is four one six, five five five, twelve thirty four",
                "+14165551234",
            ),
            (
                "one six one three two two two zero one two three",
                "+16132220123",
            ),
        ] {
            assert_eq!(e164(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn quatre_vingt_is_tried_both_ways() {
        // 80-22-2 gives 9 digits and 80-2-2 an exchange starting with 0: only 4 then 22 fits.
        assert_eq!(
            e164("cinq un quatre vingt deux deux, trois trois trois trois").as_deref(),
            Ok("+15142223333")
        );
    }

    #[test]
    fn several_valid_readings_are_ambiguous_and_asked_again() {
        let Err(InvalidPhoneNumber::Ambiguous { candidates }) =
            PhoneNumber::try_from("quatre vingt quatre vingt quatre vingt quatre vingt vingt deux")
        else {
            panic!("expected an ambiguity");
        };
        assert_eq!(candidates, ["8084242022", "8084208022"]);
        // Hyphens and commas say how the words group: no ambiguity left.
        assert_eq!(
            e164("quatre-vingt, quatre-vingt-quatre, vingt, quatre-vingt, vingt-deux").as_deref(),
            Ok("+18084208022")
        );
    }

    #[test]
    fn rejections_repeat_what_was_understood() {
        assert_eq!(
            e164("514 123 4567"),
            Err(InvalidPhoneNumber::NotNanp {
                digits: "5141234567".into()
            })
        );
        assert_eq!(
            e164("cinq un quatre cinq cinq"),
            Err(InvalidPhoneNumber::NotNanp {
                digits: "51455".into()
            })
        );
        assert_eq!(e164("je ne sais pas"), Err(InvalidPhoneNumber::NoDigits));
        assert_eq!(e164(""), Err(InvalidPhoneNumber::NoDigits));
        assert_eq!(
            e164("011 33 1 23 45 67 89"),
            Err(InvalidPhoneNumber::NotNanp {
                digits: "01133123456789".into()
            })
        );
    }

    #[test]
    fn spoken_form_groups_digits() {
        let p = PhoneNumber::try_from("514 555 1234").unwrap();
        assert_eq!(p.spoken(), "5 1 4, 5 5 5, 1 2 3 4");
        assert_eq!(p.national_digits(), "5145551234");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"+15145551234\"");
        let back: PhoneNumber = serde_json::from_str("\"+15145551234\"").unwrap();
        assert_eq!(back, p);
    }
}
