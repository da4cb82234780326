//! The kind of work asked for, matched against French and English phrases.

use serde::{Deserialize, Serialize};

use super::common::Rejection;
use super::description::{Description, is_non_answer};
use crate::domain::Language;
use crate::text::{FILLERS, fold, words};

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

    /// The service named in `input` by the rules alone: a slug, a listed service, or « autre
    /// chose » said as such; `None` for anything unmatched (never `autre` by default).
    pub fn recognise(input: &str) -> Option<Self> {
        let ws: Vec<String> = words(input)
            .into_iter()
            .filter(|w| !FILLERS.contains(&w.as_str()))
            .collect();
        if let Some(slug) = ServiceType::ALL
            .iter()
            .find(|s| ws.len() == 1 && ws[0] == s.slug())
        {
            return Some(*slug);
        }
        SERVICE_RULES.iter().find_map(|(service, phrases)| {
            phrases
                .iter()
                .any(|p| phrase_matches(&ws, p))
                .then_some(*service)
        })
    }

    /// A service named by one of its own words (« de l'essouchement », "stump grinding"), not
    /// merely suggested by the story (« une branche », « un arbre mort »): what may replace a
    /// service already answered.
    pub fn named(input: &str) -> Option<Self> {
        const NAMES: &[(ServiceType, &[&str])] = &[
            (
                ServiceType::UrgenceTempete,
                &["tempete*", "storm*", "urgence tempete"],
            ),
            (
                ServiceType::Essouchement,
                &["essouch*", "souche*", "stump*"],
            ),
            (ServiceType::Haie, &["haie*", "hedge*"]),
            (
                ServiceType::Abattage,
                &["abatt*", "abat*", "tree removal", "removal", "cut down"],
            ),
            (
                ServiceType::Elagage,
                &["elag*", "emond*", "prun*", "trimming"],
            ),
            (ServiceType::Plantation, &["plantation*", "planting"]),
            (
                ServiceType::Evaluation,
                &[
                    "evaluation*",
                    "estimation*",
                    "inspection*",
                    "assessment*",
                    "diagnostic*",
                ],
            ),
        ];
        let ws: Vec<String> = words(input);
        NAMES.iter().find_map(|(service, phrases)| {
            phrases
                .iter()
                .any(|p| phrase_matches(&ws, p))
                .then_some(*service)
        })
    }

    /// A service recognised inside a longer sentence: as [`ServiceType::recognise`], `autre`
    /// excepted (« une autre branche » is not a request for another service).
    pub fn mentioned(input: &str) -> Option<Self> {
        Self::recognise(input).filter(|s| *s != ServiceType::Autre)
    }
}

/// What BP Émondage does, as Myriam says it when asked.
pub const SERVICES_OFFERED: &[ServiceType] = &[
    ServiceType::Elagage,
    ServiceType::Abattage,
    ServiceType::Essouchement,
    ServiceType::Haie,
    ServiceType::UrgenceTempete,
    ServiceType::Plantation,
    ServiceType::Evaluation,
];

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
            "mort",
            "morte",
            "morts",
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
