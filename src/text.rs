//! Text helpers for matching what callers say (ASR output): folding case and accents, words.

/// Lowercase, accents removed, typographic apostrophes made plain; keeps letters, digits, spaces,
/// apostrophes and hyphens, turns everything else into spaces, and collapses runs of spaces.
/// `« Ça peut ATTENDRE, euh… »` → `ca peut attendre euh`.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.chars() {
        let c = match c {
            '’' | '‘' | '`' | 'ʼ' => '\'',
            '‐' | '‑' | '–' | '—' => '-',
            _ => c,
        };
        let keep = c.is_alphanumeric() || c == '\'' || c == '-';
        if !keep {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        for lower in c.to_lowercase() {
            out.push(strip_accent(lower));
        }
    }
    out
}

/// `é` → `e`, `ç` → `c`, `œ` stays (rare in answers). Only Latin letters callers use here.
pub fn strip_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => c,
    }
}

/// The folded words of `input`, apostrophes and hyphens splitting words too
/// (`c'est` → `c`, `est`; `peut-être` → `peut`, `etre`).
pub fn words(input: &str) -> Vec<String> {
    fold(input)
        .split([' ', '\'', '-'])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// True when the folded `haystack` contains `phrase` (already folded) on word boundaries.
pub fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    let hay = format!(" {} ", haystack.replace(['\'', '-'], " "));
    let needle = format!(" {} ", phrase.replace(['\'', '-'], " "));
    hay.contains(&needle)
}

/// Pure hesitations: never words of a name or an address, dropped anywhere.
pub const HESITATIONS: &[&str] = &[
    "euh", "heu", "euhm", "hum", "humm", "hmm", "mmm", "um", "umm", "uh", "uhh", "er", "erm",
];

/// Hesitations and fillers ASR keeps in transcripts. Some are also names (`Ben`, `Oh`): parsers of
/// names and addresses drop only [`HESITATIONS`] anywhere, and these only before a lead-in.
pub const FILLERS: &[&str] = &[
    "euh", "heu", "euhm", "hum", "humm", "hmm", "mmm", "ben", "bin", "bah", "beh", "tsé", "tse",
    "um", "umm", "uh", "uhh", "er", "erm", "ah", "oh", "alors", "donc", "genre", "well",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_lowercases_strips_accents_and_punctuation() {
        assert_eq!(fold("« Ça peut ATTENDRE, euh… »"), "ca peut attendre euh");
        assert_eq!(fold("C’est   l'Île-Bizard!"), "c'est l'ile-bizard");
        assert_eq!(fold(""), "");
        assert_eq!(fold("¿?!"), "");
    }

    #[test]
    fn words_split_on_apostrophes_and_hyphens() {
        assert_eq!(words("C'est peut-être"), ["c", "est", "peut", "etre"]);
    }

    #[test]
    fn phrases_match_on_word_boundaries() {
        assert!(contains_phrase("non c'est pas urgent", "pas urgent"));
        assert!(contains_phrase("c'est pas urgent", "c'est pas urgent"));
        assert!(!contains_phrase("pasurgent", "pas urgent"));
        assert!(!contains_phrase("inoui", "oui"));
    }
}
