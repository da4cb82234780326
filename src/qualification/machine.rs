//! The pure state machine: one answer in, the updated lead and an [`Outcome`] out.
//!
//! | lead status | answer | result |
//! |---|---|---|
//! | `nouveau`/`en_cours` | valid for the current field | field set, `continue` with the next question (or `complete`, lead `qualifie`) |
//! | `nouveau`/`en_cours` | invalid, failures 1–2 for this field | `validation_error`, re-ask |
//! | `nouveau`/`en_cours` | invalid, failure 3 | `validation_error`, re-ask with an example |
//! | `nouveau`/`en_cours` | invalid, failure 4 | `validation_error`, `next_step` null, callback offered, lead `abandonne` |
//! | any open | "English please" (alone) | `continue`, same question in English |
//! | any open | "non, mon nom c'est …" for an answered field | that field replaced, `continue` with the current question |
//! | `qualifie` | anything | `complete` again (idempotent), nothing changed |
//! | `abandonne` | anything | `validation_error`, `next_step` null, the callback offer again |
//! | any open | a request for a person (« je veux parler à quelqu'un », "a real person") | `human_requested`, nothing applied: the caller hands the call to people |
//! | `transfere`/`rappel` | anything | `human_requested` again, nothing changed |
//!
//! Every caller answer is appended to the lead's conversation, and Myriam's reply after it.

use serde::{Deserialize, Serialize};

use crate::domain::{InvalidPhoneNumber, Language, LeadStatus, PhoneNumber};
use crate::text::{FILLERS, fold};

use super::parsing::{
    Address, Description, PersonName, Rejection, ServiceType, Urgency, asks_for_person,
    clearly_english, is_blank, language_request, without_language_request, yes_no,
};
use super::{Field, Lead, Outcome, OutcomeStatus, Turn, prompts};

/// Failures of one field before Myriam re-asks with an example.
pub const EXAMPLE_AFTER_FAILURES: u8 = 3;

/// A message from the caller's conversation so far, as Vapi sends it (`role`, `content`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub role: String,
    pub content: String,
}

/// A parsed answer for one field.
enum Answer {
    Name(PersonName),
    Phone { number: PhoneNumber, raw: String },
    Address(Address),
    Service(ServiceType),
    Description(Description),
    Urgency(bool),
}

/// Why an answer for one field was not taken.
enum Refusal {
    Invalid,
    Phone(InvalidPhoneNumber),
    /// The caller said no to the caller-ID number: not a failure, ask for the number.
    OfferDeclined,
}

/// How the machine speaks, from the gateway's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Repeat the virtual-assistant disclosure when the call switches to English
    /// (`CALL_DISCLOSURE`, on by default).
    pub disclosure: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { disclosure: true }
    }
}

/// Applies `user_input` to `lead` and says what Myriam answers, with the default [`Options`].
/// Deterministic: the same lead and input always give the same lead and outcome.
pub fn process_response(lead: &mut Lead, user_input: &str, history: &[HistoryMessage]) -> Outcome {
    process_response_with(lead, user_input, history, Options::default())
}

/// [`process_response`] with explicit [`Options`].
pub fn process_response_with(
    lead: &mut Lead,
    user_input: &str,
    history: &[HistoryMessage],
    options: Options,
) -> Outcome {
    let field = lead.current_field();
    let (outcome, accepted) = decide(lead, user_input, history, field, options.disclosure);
    lead.conversation
        .push(Turn::caller(field, user_input.to_owned(), accepted));
    let next = lead.current_field();
    lead.conversation
        .push(Turn::myriam(next, outcome.message.clone()));
    outcome
}

fn decide(
    lead: &mut Lead,
    user_input: &str,
    history: &[HistoryMessage],
    field: Option<Field>,
    disclosure: bool,
) -> (Outcome, bool) {
    match lead.status {
        LeadStatus::Qualifie => return (complete(lead), false),
        LeadStatus::Abandonne => return (abandoned(lead), false),
        LeadStatus::Transfere | LeadStatus::Rappel => return (person_requested(lead), false),
        LeadStatus::Nouveau | LeadStatus::EnCours => {}
    }
    if asks_for_person(user_input) {
        // An intent, never a field value: nothing is applied, what was collected stays.
        if lead.language == Language::Fr && clearly_english(user_input) {
            lead.language = Language::En;
        }
        return (person_requested(lead), false);
    }
    let Some(field) = field else {
        // All six in but not marked: finish now.
        lead.status = LeadStatus::Qualifie;
        return (complete(lead), false);
    };
    lead.status = LeadStatus::EnCours;

    // Language: an explicit request switches (and may be all that was said); a clearly English
    // answer switches too, and the session stays in English.
    let mut answer = user_input.to_owned();
    let mut switched = false;
    if let Some(requested) = language_request(user_input) {
        switched = requested != lead.language;
        lead.language = requested;
        let rest = without_language_request(user_input);
        if is_blank(&rest) {
            let message = if switched {
                format!(
                    "{} {}",
                    prompts::language_switched(lead.language, disclosure),
                    prompts::question_for(lead, field)
                )
            } else {
                prompts::question_for(lead, field)
            };
            return (continuing(lead, None, message), true);
        }
        answer = rest;
    } else if lead.language == Language::Fr
        && (clearly_english(user_input) || history_is_english(history))
    {
        lead.language = Language::En;
    }

    if let Some(result) = correction(lead, &answer, field) {
        return result;
    }

    match parse(field, &answer, lead) {
        Ok(parsed) => {
            apply(lead, parsed);
            lead.attempts.remove(&field);
            let ack = prompts::acknowledgement(field, lead);
            match lead.current_field() {
                None => {
                    lead.status = LeadStatus::Qualifie;
                    let mut outcome = complete(lead);
                    outcome.field_updated = Some(field);
                    (outcome, true)
                }
                Some(next) => {
                    let message = format!(
                        "{}{ack} {}",
                        if switched {
                            format!("{} ", prompts::language_switched(lead.language, disclosure))
                        } else {
                            String::new()
                        },
                        prompts::question_for(lead, next)
                    );
                    (continuing(lead, Some(field), message), true)
                }
            }
        }
        Err(Refusal::OfferDeclined) => {
            lead.offered_phone = None;
            let message = prompts::phone_offer_declined(lead.language);
            (continuing(lead, None, message), true)
        }
        Err(refusal) => (failed(lead, field, &refusal), false),
    }
}

/// True when the caller's recent messages in the conversation history are clearly English.
fn history_is_english(history: &[HistoryMessage]) -> bool {
    let user: Vec<&HistoryMessage> = history
        .iter()
        .rev()
        .filter(|m| m.role == "user")
        .take(2)
        .collect();
    user.len() == 2 && user.iter().all(|m| clearly_english(&m.content))
}

fn parse(field: Field, answer: &str, lead: &Lead) -> Result<Answer, Refusal> {
    match field {
        Field::NomComplet => PersonName::try_from(answer)
            .map(Answer::Name)
            .map_err(|_: Rejection| Refusal::Invalid),
        Field::Telephone => parse_phone(answer, lead.offered_phone.as_ref()),
        Field::AdresseComplete => Address::try_from(answer)
            .map(Answer::Address)
            .map_err(|_: Rejection| Refusal::Invalid),
        Field::TypeService => ServiceType::try_from(answer)
            .map(Answer::Service)
            .map_err(|_: Rejection| Refusal::Invalid),
        Field::Description => Description::try_from(answer)
            .map(Answer::Description)
            .map_err(|_: Rejection| Refusal::Invalid),
        Field::Urgence => Urgency::try_from(answer)
            .map(|u| Answer::Urgency(u.0))
            .map_err(|_: Rejection| Refusal::Invalid),
    }
}

/// A number, or yes/no to the caller-ID number offered.
fn parse_phone(answer: &str, offered: Option<&PhoneNumber>) -> Result<Answer, Refusal> {
    let raw = answer.trim().to_owned();
    match PhoneNumber::try_from(answer) {
        Ok(number) => Ok(Answer::Phone { number, raw }),
        Err(InvalidPhoneNumber::NoDigits) => match (offered, yes_no(answer)) {
            // Confirmed with a "oui": the number as given is the caller ID, not the words.
            (Some(number), Some(true)) => Ok(Answer::Phone {
                number: number.clone(),
                raw: number.as_e164().to_owned(),
            }),
            (Some(_), Some(false)) => Err(Refusal::OfferDeclined),
            _ => Err(Refusal::Phone(InvalidPhoneNumber::NoDigits)),
        },
        Err(other) => Err(Refusal::Phone(other)),
    }
}

fn apply(lead: &mut Lead, answer: Answer) {
    match answer {
        Answer::Name(name) => lead.nom_complet = Some(name),
        Answer::Phone { number, raw } => {
            lead.telephone = Some(number);
            lead.telephone_raw = Some(raw);
        }
        Answer::Address(address) => lead.adresse_complete = Some(address),
        Answer::Service(service) => lead.type_service = Some(service),
        Answer::Description(description) => lead.description = Some(description),
        Answer::Urgency(urgent) => lead.urgence = Some(urgent),
    }
}

/// Markers that announce a correction of an earlier answer.
const CORRECTION_MARKERS: &[&str] = &[
    "non",
    "no",
    "en",
    "fait",
    "pardon",
    "correction",
    "oups",
    "oops",
    "finalement",
    "plutot",
    "actually",
    "sorry",
    "wait",
    "attendez",
    "excusez",
    "moi",
    "je",
    "veux",
    "dire",
    "i",
    "mean",
    "scratch",
    "that",
];

/// Phrases that name an earlier field, folded, longest first.
const CORRECTION_TARGETS: &[(Field, &str)] = &[
    (Field::NomComplet, "mon nom complet c'est"),
    (Field::NomComplet, "mon nom complet est"),
    (Field::NomComplet, "mon nom c'est"),
    (Field::NomComplet, "mon nom est"),
    (Field::NomComplet, "je m'appelle"),
    (Field::NomComplet, "my full name is"),
    (Field::NomComplet, "my name is"),
    (Field::NomComplet, "my name's"),
    (Field::Telephone, "mon numero de telephone c'est"),
    (Field::Telephone, "mon numero de telephone est"),
    (Field::Telephone, "mon numero c'est"),
    (Field::Telephone, "mon numero est"),
    (Field::Telephone, "mon telephone c'est"),
    (Field::Telephone, "le bon numero c'est"),
    (Field::Telephone, "le bon numero est"),
    (Field::Telephone, "my phone number is"),
    (Field::Telephone, "my number is"),
    (Field::Telephone, "the number is"),
    (Field::AdresseComplete, "mon adresse c'est"),
    (Field::AdresseComplete, "mon adresse est"),
    (Field::AdresseComplete, "l'adresse c'est"),
    (Field::AdresseComplete, "l'adresse est"),
    (Field::AdresseComplete, "my address is"),
    (Field::AdresseComplete, "the address is"),
];

/// "non, mon nom c'est …" / "actually my number is …" naming a field already answered: replaces it.
/// Returns `None` when the answer is not such a correction.
fn correction(lead: &mut Lead, answer: &str, current: Field) -> Option<(Outcome, bool)> {
    let raw: Vec<&str> = answer.split_whitespace().collect();
    let folded: Vec<String> = raw.iter().map(|w| fold(w)).collect();
    // Skip leading markers and fillers.
    let start = folded
        .iter()
        .position(|w| {
            !w.is_empty()
                && !CORRECTION_MARKERS.contains(&w.as_str())
                && !FILLERS.contains(&w.as_str())
        })
        .unwrap_or(folded.len());
    let (target, len) = CORRECTION_TARGETS.iter().find_map(|(field, phrase)| {
        let words: Vec<&str> = phrase.split(' ').collect();
        let matches = folded.len() >= start + words.len()
            && folded[start..start + words.len()]
                .iter()
                .zip(&words)
                .all(|(a, b)| a == b);
        matches.then_some((*field, words.len()))
    })?;
    // Only a field already answered is a correction; naming the current one is just an answer.
    if target.step() >= current.step() || !lead.has(target) {
        return None;
    }
    let value = raw[start + len..].join(" ");
    let language = lead.language;
    let parsed = match target {
        Field::Telephone => match PhoneNumber::try_from(value.as_str()) {
            Ok(number) => Some(Answer::Phone { number, raw: value }),
            Err(_) => None,
        },
        _ => parse(target, &value, lead).ok(),
    };
    let question = prompts::question_for(lead, current);
    Some(if let Some(answer) = parsed {
        apply(lead, answer);
        let message = format!("{} {question}", prompts::correction_done(language));
        (continuing(lead, Some(target), message), true)
    } else {
        let message = format!(
            "{} {question}",
            prompts::correction_not_understood(language)
        );
        (
            Outcome {
                success: false,
                status: OutcomeStatus::ValidationError,
                next_step: Some(current.step()),
                field_updated: None,
                is_complete: false,
                message,
                lead_data: Some(lead.data()),
            },
            false,
        )
    })
}

fn continuing(lead: &Lead, field_updated: Option<Field>, message: String) -> Outcome {
    Outcome {
        success: true,
        status: OutcomeStatus::Continue,
        next_step: lead.current_field().map(Field::step),
        field_updated,
        is_complete: false,
        message,
        lead_data: Some(lead.data()),
    }
}

fn complete(lead: &Lead) -> Outcome {
    Outcome {
        success: true,
        status: OutcomeStatus::Complete,
        next_step: None,
        field_updated: None,
        is_complete: true,
        message: prompts::confirmation(lead),
        lead_data: Some(lead.data()),
    }
}

fn person_requested(lead: &Lead) -> Outcome {
    Outcome {
        success: true,
        status: OutcomeStatus::HumanRequested,
        next_step: lead.current_field().map(Field::step),
        field_updated: None,
        is_complete: false,
        message: prompts::person_requested(lead.language).to_owned(),
        lead_data: Some(lead.data()),
    }
}

fn abandoned(lead: &Lead) -> Outcome {
    Outcome {
        success: false,
        status: OutcomeStatus::ValidationError,
        next_step: None,
        field_updated: None,
        is_complete: false,
        message: prompts::abandon(lead),
        lead_data: Some(lead.data()),
    }
}

/// A refused answer: re-ask, re-ask with an example, or give up with a callback offer.
fn failed(lead: &mut Lead, field: Field, refusal: &Refusal) -> Outcome {
    let failures = {
        let n = lead.attempts.entry(field).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    if failures > EXAMPLE_AFTER_FAILURES {
        lead.status = LeadStatus::Abandonne;
        return abandoned(lead);
    }
    let language = lead.language;
    let message = if failures == EXAMPLE_AFTER_FAILURES {
        prompts::reask_with_example(field, language)
    } else {
        match refusal {
            Refusal::Phone(InvalidPhoneNumber::Ambiguous { .. }) => {
                prompts::phone_ambiguous(language)
            }
            Refusal::Phone(invalid) => match invalid.understood() {
                Some(digits) => prompts::phone_not_valid(digits, language),
                None => prompts::reask(field, language),
            },
            Refusal::Invalid | Refusal::OfferDeclined => prompts::reask(field, language),
        }
    };
    Outcome {
        success: false,
        status: OutcomeStatus::ValidationError,
        next_step: Some(field.step()),
        field_updated: None,
        is_complete: false,
        message,
        lead_data: Some(lead.data()),
    }
}
