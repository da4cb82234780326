//! Parsers for the six answers, each a domain type built with `TryFrom<&str>`.
//!
//! Input is what ASR heard: no punctuation, hesitations (`euh`), repeated words, mixed French and
//! English. Every parser is total: any string gives a value or a typed rejection, never a panic.

mod address;
mod common;
mod description;
mod language;
mod name;
mod person;
mod service;
mod urgency;

pub use address::*;
pub use common::{MAX_NAME_CHARS, Rejection};
pub use description::*;
pub use language::*;
pub use name::*;
pub use person::*;
pub use service::*;
pub use urgency::*;

#[cfg(test)]
mod tests {
    use super::common::*;
    use super::*;
    use crate::domain::Language;

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
