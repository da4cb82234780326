//! The description of the job: anything meaningful the caller says.

use serde::{Deserialize, Serialize};

use super::common::Rejection;
use crate::text::{FILLERS, words};

/// "je sais pas", "pardon", "what": the caller did not answer.
pub(super) fn is_non_answer(ws: &[String]) -> bool {
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
