//! What every parser shares: [`Rejection`] and the word helpers.

use crate::text::{FILLERS, HESITATIONS, fold};

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

/// Strips `lead_ins` at the start of `words` (repeatedly), `trailers` at the end, and fillers
/// anywhere. Works on original words, matching their folded forms; linear in the number of words
/// times the number of phrases.
pub(super) fn strip_affixes<'a>(
    words: Vec<&'a str>,
    lead_ins: &[&str],
    trailers: &[&str],
) -> Vec<&'a str> {
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
pub(super) fn raw_words(input: &str) -> Vec<&str> {
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
pub(super) fn dedupe_stutter(words: Vec<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for w in words {
        if out.last().is_some_and(|last| fold(last) == fold(w)) {
            continue;
        }
        out.push(w);
    }
    out
}

pub(super) fn capitalise_part(part: &str) -> String {
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
pub(super) fn capitalise_word(word: &str) -> String {
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
