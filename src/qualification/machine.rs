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

use super::lead::{Field, Lead, Note, Outcome, OutcomeStatus, Turn};
use super::parsing::{
    Address, Description, PersonName, Rejection, ServiceType, Urgency, asks_for_person,
    clearly_english, is_blank, language_request, without_language_request, yes_no,
};
use super::{listen, prompts};

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
    let Reply {
        outcome,
        accepted,
        note,
    } = decide(lead, user_input, history, field, options.disclosure);
    lead.conversation
        .push(Turn::caller(field, user_input.to_owned(), accepted));
    let next = lead.current_field();
    let mut myriam = Turn::myriam(next, outcome.message.clone());
    myriam.note = note;
    lead.conversation.push(myriam);
    outcome
}

/// Saves `value` as `field`, whatever the step (the assistant heard an address before it asked
/// for it, or a correction of a field already saved). A person request, a closed lead or the
/// field being asked take the ordinary path ([`process_response_with`]); otherwise the value is
/// parsed by that field's parser alone: kept (« C'est noté » / « C'est corrigé ») and Myriam asks
/// what is still missing, or refused with the current question again (no failure counted).
pub fn process_field(
    lead: &mut Lead,
    field: Field,
    value: &str,
    history: &[HistoryMessage],
    options: Options,
) -> Outcome {
    let open = matches!(lead.status, LeadStatus::Nouveau | LeadStatus::EnCours);
    if !open
        || asks_for_person(value)
        || lead.current_field() == Some(field)
        || lead.pending().is_some()
    {
        return process_response_with(lead, value, history, options);
    }
    let asked = lead.current_field();
    lead.status = LeadStatus::EnCours;
    let parsed = match field {
        Field::Telephone => PhoneNumber::try_from(value)
            .map(|number| Answer::Phone {
                number,
                raw: value.trim().to_owned(),
            })
            .map_err(|_| Refusal::Invalid),
        Field::AdresseComplete => match listen::hear(value).address {
            Some(address) => Ok(Answer::Address(address)),
            None => parse(field, value, lead),
        },
        Field::TypeService => ServiceType::recognise(value)
            .map(Answer::Service)
            .ok_or(Refusal::Invalid),
        _ => parse(field, value, lead),
    };
    let language = lead.language;
    let (outcome, accepted, note) = if let Ok(answer) = parsed {
        let had = lead.has(field);
        apply(lead, answer);
        let said = if had {
            prompts::correction_done(language)
        } else {
            prompts::noted(language)
        };
        let (next, note) = if needs_read_back(lead) {
            (prompts::read_back(lead), Some(Note::ReadBack(1)))
        } else if let Some(next) = lead.current_field() {
            (prompts::question_for(lead, next), None)
        } else {
            lead.status = LeadStatus::Qualifie;
            (String::new(), None)
        };
        let outcome = if lead.status == LeadStatus::Qualifie {
            let mut outcome = complete(lead);
            outcome.field_updated = Some(field);
            outcome
        } else {
            continuing(lead, Some(field), format!("{said} {next}"))
        };
        (outcome, true, note)
    } else {
        let message = format!(
            "{} {}",
            prompts::correction_not_understood(language),
            pending_question(lead)
        );
        let outcome = Outcome {
            success: false,
            status: OutcomeStatus::ValidationError,
            next_step: lead.current_field().map(Field::step),
            field_updated: None,
            is_complete: false,
            message,
            lead_data: Some(lead.data()),
        };
        (outcome, false, None)
    };
    lead.conversation
        .push(Turn::caller(asked, value.to_owned(), accepted));
    let mut myriam = Turn::myriam(lead.current_field(), outcome.message.clone());
    myriam.note = note;
    lead.conversation.push(myriam);
    outcome
}

/// The fields still missing, in the order Myriam asks them (what the assistant is told).
pub fn missing(lead: &Lead) -> Vec<Field> {
    Field::ALL.into_iter().filter(|f| !lead.has(*f)).collect()
}

/// What the machine answers: the outcome, whether the answer was accepted, and what Myriam's
/// line waits for besides the next field.
struct Reply {
    outcome: Outcome,
    accepted: bool,
    note: Option<Note>,
}

impl From<(Outcome, bool)> for Reply {
    fn from((outcome, accepted): (Outcome, bool)) -> Self {
        Self {
            outcome,
            accepted,
            note: None,
        }
    }
}

/// What Myriam is waiting for, said again (after a language switch with nothing else).
pub fn pending_question(lead: &Lead) -> String {
    match lead.pending() {
        Some(Note::FamilyName(first)) => prompts::family_name_question(first, lead.language),
        Some(Note::ReadBack(_)) => prompts::read_back(lead),
        Some(Note::WhatToFix(_)) => prompts::what_to_fix(lead.language).to_owned(),
        Some(Note::Fix(field, _)) => prompts::fix_question(*field, lead.language).to_owned(),
        _ => match lead.current_field() {
            Some(field) => prompts::question_for(lead, field),
            None => prompts::confirmation(lead),
        },
    }
}

fn decide(
    lead: &mut Lead,
    user_input: &str,
    history: &[HistoryMessage],
    field: Option<Field>,
    disclosure: bool,
) -> Reply {
    match lead.status {
        LeadStatus::Qualifie => return (complete(lead), false).into(),
        LeadStatus::Abandonne => return (abandoned(lead), false).into(),
        LeadStatus::Transfere | LeadStatus::Rappel => {
            return (person_requested(lead), false).into();
        }
        LeadStatus::Nouveau | LeadStatus::EnCours => {}
    }
    if asks_for_person(user_input) {
        // An intent, never a field value: nothing is applied, what was collected stays.
        if lead.language == Language::Fr && clearly_english(user_input) {
            lead.language = Language::En;
        }
        let note = lead.pending().cloned();
        return Reply {
            outcome: person_requested(lead),
            accepted: false,
            note,
        };
    }
    let pending = lead.pending().cloned();
    let reading_back = matches!(
        pending,
        Some(Note::ReadBack(_) | Note::WhatToFix(_) | Note::Fix(..))
    );
    if field.is_none() && !reading_back {
        // All six in but not marked: finish now.
        lead.status = LeadStatus::Qualifie;
        return (complete(lead), false).into();
    }
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
            let question = pending_question(lead);
            let message = if switched {
                format!(
                    "{} {question}",
                    prompts::language_switched(lead.language, disclosure)
                )
            } else {
                question
            };
            return Reply {
                outcome: continuing(lead, None, message),
                accepted: true,
                note: pending,
            };
        }
        answer = rest;
    } else if lead.language == Language::Fr
        && (clearly_english(user_input) || history_is_english(history))
    {
        lead.language = Language::En;
    }
    let prefix = if switched {
        format!("{} ", prompts::language_switched(lead.language, disclosure))
    } else {
        String::new()
    };

    if let Some(round) = match pending {
        Some(Note::ReadBack(round) | Note::WhatToFix(round) | Note::Fix(_, round)) => Some(round),
        _ => None,
    } {
        if let Some(reply) = read_back_answer(lead, &answer, pending.as_ref(), round, &prefix) {
            return reply;
        }
    }
    let Some(field) = lead.current_field() else {
        lead.status = LeadStatus::Qualifie;
        return (complete(lead), false).into();
    };

    if let Some(result) = correction(lead, &answer, field) {
        return result.into();
    }
    let family = match pending {
        Some(Note::FamilyName(first)) if field == Field::NomComplet => {
            PersonName::from_stored(&first)
        }
        _ => None,
    };
    listen_and_answer(lead, &answer, field, family, &prefix)
}

/// What changed in the lead with one utterance.
#[derive(Default)]
struct Changes {
    /// Fields given for the first time besides the one asked.
    filled: Vec<Field>,
    /// Fields already answered and replaced.
    corrected: Vec<Field>,
}

impl Changes {
    fn any(&self) -> bool {
        !self.filled.is_empty() || !self.corrected.is_empty()
    }
}

/// Applies what the caller said for the fields other than `field`: a value for a field not yet
/// answered is kept; one for a field already answered replaces it only after a correction lead
/// (« non », « attendez », « en fait »…).
fn take_the_rest(lead: &mut Lead, heard: &listen::Heard, field: Field, announced: bool) -> Changes {
    let mut changes = Changes::default();
    let put = |lead: &Lead, target: Field, differs: bool, changes: &mut Changes| -> bool {
        if target == field {
            return false;
        }
        if !lead.has(target) {
            changes.filled.push(target);
            true
        } else if announced && differs {
            changes.corrected.push(target);
            true
        } else {
            false
        }
    };
    if let Some(name) = &heard.name {
        let name = match (&lead.nom_complet, name.is_first_name_only()) {
            (Some(old), true) => old.with_first_name(name),
            _ => name.clone(),
        };
        let differs = lead.nom_complet.as_ref() != Some(&name);
        // A name is never filled out of turn: only corrected.
        if lead.has(Field::NomComplet) && put(lead, Field::NomComplet, differs, &mut changes) {
            lead.nom_complet = Some(name);
        }
    }
    if let Some((number, raw)) = &heard.phone {
        let differs = lead.telephone.as_ref() != Some(number);
        if put(lead, Field::Telephone, differs, &mut changes) {
            lead.telephone = Some(number.clone());
            lead.telephone_raw = Some(raw.clone());
        }
    }
    if let Some(address) = &heard.address {
        let differs = lead.adresse_complete.as_ref() != Some(address);
        if put(lead, Field::AdresseComplete, differs, &mut changes) {
            lead.adresse_complete = Some(address.clone());
        }
    }
    // A service already answered is replaced only when named (« de l'essouchement »), not when a
    // story merely suggests one.
    let service = if lead.has(Field::TypeService) {
        ServiceType::named(&heard.residual)
    } else {
        heard.service
    };
    if let Some(service) = service {
        let differs = lead.type_service != Some(service);
        if put(lead, Field::TypeService, differs, &mut changes) {
            lead.type_service = Some(service);
        }
    }
    if let Some(story) = &heard.story {
        if field != Field::TypeService
            && field != Field::Description
            && !lead.has(Field::Description)
        {
            changes.filled.push(Field::Description);
            lead.description = Some(story.clone());
        }
    }
    if let Some(urgent) = heard.urgency {
        if field != Field::Urgence && !lead.has(Field::Urgence) {
            changes.filled.push(Field::Urgence);
            lead.urgence = Some(urgent);
        }
    }
    changes
}

/// The answer for the field asked, from the whole utterance.
fn current_answer(
    lead: &Lead,
    field: Field,
    text: &str,
    heard: &listen::Heard,
    question: bool,
    announced: bool,
    changes: &Changes,
) -> Result<Answer, Refusal> {
    let something_else = changes.any();
    match field {
        Field::NomComplet => {
            if let Some(name) = &heard.name {
                return Ok(Answer::Name(name.clone()));
            }
            if question || heard.address.is_some() || heard.phone.is_some() {
                return Err(Refusal::Invalid);
            }
            match PersonName::try_from(text) {
                Ok(name) if listen::plausible_name(&name, text) => Ok(Answer::Name(name)),
                _ => Err(Refusal::Invalid),
            }
        }
        Field::Telephone => {
            if heard.address.is_none() && !question {
                match parse_phone(text, lead.offered_phone.as_ref()) {
                    Err(Refusal::OfferDeclined) if something_else => {}
                    other @ (Ok(_) | Err(Refusal::OfferDeclined)) => return other,
                    Err(refusal) => {
                        if heard.phone.is_none() {
                            return Err(refusal);
                        }
                    }
                }
            }
            match &heard.phone {
                Some((number, raw)) => Ok(Answer::Phone {
                    number: number.clone(),
                    raw: raw.clone(),
                }),
                None => match (lead.offered_phone.as_ref(), yes_no(&heard.residual)) {
                    (Some(number), Some(true)) if !question => Ok(Answer::Phone {
                        number: number.clone(),
                        raw: number.as_e164().to_owned(),
                    }),
                    _ => Err(Refusal::Invalid),
                },
            }
        }
        Field::AdresseComplete => match &heard.address {
            Some(address) => Ok(Answer::Address(address.clone())),
            None if question || heard.phone.is_some() => Err(Refusal::Invalid),
            None => parse(field, text, lead),
        },
        Field::TypeService => {
            if let Some(service) = ServiceType::recognise(&heard.residual) {
                return Ok(Answer::Service(service));
            }
            // `autre` only for a service outside the list that the caller describes, once
            // Myriam has asked again with the list.
            let described = Description::try_from(heard.residual.as_str()).is_ok()
                && heard.residual.split_whitespace().count() >= 3
                && ServiceType::try_from(heard.residual.as_str()) == Ok(ServiceType::Autre);
            if described
                && !question
                && !something_else
                && lead.attempts.get(&field).copied().unwrap_or(0) >= 1
            {
                Ok(Answer::Service(ServiceType::Autre))
            } else {
                Err(Refusal::Invalid)
            }
        }
        // A correction lead followed by another field's value corrects that field; it is neither
        // the description nor a « non » to the urgency.
        Field::Description | Field::Urgence
            if question
                || !changes.corrected.is_empty()
                || (announced && heard.names_a_field()) =>
        {
            Err(Refusal::Invalid)
        }
        Field::Description if changes.any() && heard.residual.split_whitespace().count() < 4 => {
            Err(Refusal::Invalid)
        }
        // « non, c'est un gros érable… » at the urgency question: the « non » opens a statement,
        // it does not answer; « non, pas vraiment », « non merci » do.
        Field::Urgence
            if listen::urgency_cue(text).is_none()
                && said_no_only(text).is_some_and(|rest| {
                    !is_blank_after_no(rest) && Urgency::try_from(rest).is_err()
                }) =>
        {
            Err(Refusal::Invalid)
        }
        Field::Description | Field::Urgence => parse(field, text, lead),
    }
}

/// What follows a plain « non » / "no" opening `text`, if it opens with one.
fn said_no_only(text: &str) -> Option<&str> {
    let lead_in = listen::correction_lead(text);
    if !lead_in.said_no || lead_in.correcting {
        return None;
    }
    let at = text.len().saturating_sub(lead_in.rest.len());
    text.get(at..).filter(|rest| *rest == lead_in.rest)
}

/// One utterance at the question for `field`: every field's parser runs over it; what was
/// confidently recognised is kept, corrections are applied, questions are answered, and Myriam
/// asks for what is still missing.
#[allow(clippy::too_many_lines)] // one utterance, one reply: reads best as a single sequence
fn listen_and_answer(
    lead: &mut Lead,
    answer: &str,
    field: Field,
    family: Option<PersonName>,
    prefix: &str,
) -> Reply {
    let lead_in = listen::correction_lead(answer);
    let announced = lead_in.correcting || lead_in.said_no;
    // After « attendez », « en fait »…, the answer is what follows; a plain « non » may be it.
    let text = if lead_in.correcting {
        lead_in.rest.clone()
    } else {
        answer.to_owned()
    };
    let mut heard = listen::hear(&lead_in.rest);
    if announced && heard.name.is_none() && !heard.names_a_field() {
        // « non, plutôt Julie Tremblay »: a full name alone after a correction lead.
        heard.name = PersonName::try_from(lead_in.rest.as_str())
            .ok()
            .filter(|name| {
                !name.is_first_name_only()
                    && listen::plausible_name(name, &lead_in.rest)
                    && Urgency::try_from(lead_in.rest.as_str()).is_err()
                    && yes_no(&lead_in.rest).is_none()
            });
    }
    let question = listen::caller_question(answer);
    // A name said alone (« Marie Plante ») is only a name: its words fill nothing else.
    let only_a_name = field == Field::NomComplet
        && heard.name.is_none()
        && heard.phone.is_none()
        && heard.address.is_none()
        && question.is_none()
        && PersonName::try_from(text.as_str())
            .is_ok_and(|name| listen::plausible_name(&name, &text));
    let changes = if only_a_name {
        Changes::default()
    } else {
        take_the_rest(lead, &heard, field, announced)
    };
    let mut asked = current_answer(
        lead,
        field,
        &text,
        &heard,
        question.is_some(),
        announced,
        &changes,
    );
    let mut note = None;
    let mut first_only = None;
    if let Some(first) = &family {
        // The answer to « Et votre nom de famille? »: a family name, a full name, or nothing more.
        asked = match asked {
            Ok(Answer::Name(name)) if name.is_first_name_only() => {
                Ok(Answer::Name(first.with_family_name(&name)))
            }
            Ok(Answer::Name(name)) => Ok(Answer::Name(name)),
            _ if question.is_some() || changes.any() => Err(Refusal::Invalid),
            _ => Ok(Answer::Name(first.clone())),
        };
    } else if let Ok(Answer::Name(name)) = &asked {
        if name.is_first_name_only() {
            first_only = Some(name.clone());
        }
    }
    let language = lead.language;
    let mut parts: Vec<String> = Vec::new();
    if !prefix.is_empty() {
        parts.push(prefix.trim_end().to_owned());
    }
    if let Some(question) = question {
        parts.push(prompts::answer_to(question, language));
    }
    if !changes.corrected.is_empty() {
        parts.push(prompts::correction_done(language).to_owned());
    }
    let updated;
    let mut filled_current = false;
    match asked {
        Ok(parsed) if first_only.is_none() => {
            apply(lead, parsed);
            lead.attempts.remove(&field);
            updated = Some(field);
            filled_current = true;
        }
        Ok(_) => {
            updated = changes
                .corrected
                .first()
                .or(changes.filled.first())
                .copied();
        }
        Err(Refusal::OfferDeclined) if !changes.any() && question.is_none() => {
            lead.offered_phone = None;
            let message = prompts::phone_offer_declined(lead.language);
            return (continuing(lead, None, message), true).into();
        }
        Err(refusal) => {
            if !changes.any() && question.is_none() {
                let mut outcome = failed(lead, field, &refusal);
                if !prefix.is_empty() {
                    outcome.message = format!("{prefix}{}", outcome.message);
                }
                let note = family.map(|f| Note::FamilyName(f.as_str().to_owned()));
                return Reply {
                    outcome,
                    accepted: false,
                    note,
                };
            }
            updated = changes
                .corrected
                .first()
                .or(changes.filled.first())
                .copied();
        }
    }
    if let Some(first) = first_only {
        parts.push(prompts::family_name_question(first.as_str(), language));
        note = Some(Note::FamilyName(first.as_str().to_owned()));
    } else if let Some(first) = family.filter(|_| !filled_current) {
        parts.push(prompts::family_name_question(first.as_str(), language));
        note = Some(Note::FamilyName(first.as_str().to_owned()));
    } else {
        let done = lead.current_field().is_none() && !needs_read_back(lead);
        // « C'est noté. J'ai noté : … » says it twice: the read-back is the address's thanks.
        let read_back_follows = needs_read_back(lead) && field == Field::AdresseComplete;
        if filled_current && !done && !read_back_follows {
            parts.push(prompts::acknowledgement(field, lead));
        } else if !filled_current && !changes.filled.is_empty() && changes.corrected.is_empty() {
            parts.push(prompts::noted(language).to_owned());
        }
        if needs_read_back(lead) {
            parts.push(prompts::read_back(lead));
            note = Some(Note::ReadBack(1));
        } else if let Some(next) = lead.current_field() {
            parts.push(prompts::question_for(lead, next));
        } else {
            lead.status = LeadStatus::Qualifie;
            let mut outcome = complete(lead);
            outcome.field_updated = updated;
            if !parts.is_empty() {
                outcome.message = format!("{} {}", parts.join(" "), outcome.message);
            }
            return (outcome, true).into();
        }
    }
    Reply {
        outcome: continuing(lead, updated, parts.join(" ")),
        accepted: true,
        note,
    }
}

/// True once the address and the number are both known and were not read back yet.
fn needs_read_back(lead: &Lead) -> bool {
    lead.telephone.is_some() && lead.adresse_complete.is_some() && !lead.read_back_done()
}

/// After the read-back: the next question, or the recap when all six are in.
fn after_read_back(lead: &mut Lead, lead_in: &str, note: Note, updated: Option<Field>) -> Reply {
    let outcome = if let Some(next) = lead.current_field() {
        let message = format!("{lead_in} {}", prompts::question_for(lead, next));
        continuing(lead, updated, message.trim().to_owned())
    } else {
        lead.status = LeadStatus::Qualifie;
        let mut outcome = complete(lead);
        outcome.field_updated = updated;
        let message = format!("{lead_in} {}", outcome.message);
        message.trim().clone_into(&mut outcome.message);
        outcome
    };
    Reply {
        outcome,
        accepted: true,
        note: Some(note),
    }
}

/// The caller's answer while the address and the number are read back (round 1 or 2): « oui »
/// goes on; « non, c'est … » corrects and reads back again; a bare « non » asks what to fix; after
/// two rounds the lead is kept as last said and marked disputed. `None` when the answer is none of
/// these and there is a question left: it is taken as the next answer (the caller went on).
#[allow(clippy::too_many_lines)] // one table of read-back answers, kept together
fn read_back_answer(
    lead: &mut Lead,
    answer: &str,
    pending: Option<&Note>,
    round: u8,
    prefix: &str,
) -> Option<Reply> {
    let language = lead.language;
    let lead_in = listen::correction_lead(answer);
    let heard = listen::hear(&lead_in.rest);
    let mut fixed = None;
    let fixing = match pending {
        Some(Note::Fix(field, _)) => Some(*field),
        _ => None,
    };
    let address = heard.address.clone().or_else(|| {
        (fixing == Some(Field::AdresseComplete))
            .then(|| Address::try_from(lead_in.rest.as_str()).ok())
            .flatten()
    });
    let phone = heard.phone.clone().or_else(|| {
        (fixing == Some(Field::Telephone))
            .then(|| {
                PhoneNumber::try_from(lead_in.rest.as_str())
                    .ok()
                    .map(|p| (p, lead_in.rest.clone()))
            })
            .flatten()
    });
    if let Some(address) = address {
        if lead.adresse_complete.as_ref() != Some(&address) {
            lead.adresse_complete = Some(address);
            fixed = Some(Field::AdresseComplete);
        }
    }
    if let Some((number, raw)) = phone {
        if lead.telephone.as_ref() != Some(&number) {
            lead.telephone = Some(number);
            lead.telephone_raw = Some(raw);
            fixed = fixed.or(Some(Field::Telephone));
        }
    }
    let again = |lead: &mut Lead, intro: &str, updated: Option<Field>| -> Reply {
        if round >= 2 {
            after_read_back(
                lead,
                &format!("{prefix}{}", prompts::read_back_kept(language)),
                Note::Disputed,
                updated,
            )
        } else {
            let message = format!("{prefix}{intro} {}", prompts::read_back(lead));
            Reply {
                outcome: continuing(lead, updated, message.trim().to_owned()),
                accepted: true,
                note: Some(Note::ReadBack(round + 1)),
            }
        }
    };
    if fixed.is_some() {
        return Some(again(lead, prompts::correction_done(language), fixed));
    }
    if lead_in.correcting || lead_in.said_no {
        // « non attendez, c'est Julie Tremblay »: a correction of another field, taken as such.
        let other = heard.name.is_some() || ServiceType::named(&heard.residual).is_some();
        if other && lead.current_field().is_some() {
            return None;
        }
    }
    let folded = crate::text::fold(&lead_in.rest);
    let names = |words: &[&str]| {
        words
            .iter()
            .any(|w| crate::text::contains_phrase(&folded, w))
    };
    // « non, pas le bon numéro »: the « non » decides, whatever else matches a yes.
    let verdict = if lead_in.said_no {
        Some(false)
    } else {
        yes_no(answer)
    };
    let about_address = names(&["adresse", "address", "rue", "street"]);
    let about_phone = names(&[
        "numero",
        "telephone",
        "number",
        "phone",
        "cellulaire",
        "cell",
    ]);
    let fix = |lead: &Lead, field: Field| Reply {
        outcome: continuing(
            lead,
            None,
            format!("{prefix}{}", prompts::fix_question(field, language)),
        ),
        accepted: true,
        note: Some(Note::Fix(field, round)),
    };
    match (pending, verdict) {
        (Some(Note::ReadBack(_) | Note::WhatToFix(_)), Some(false)) if about_address => {
            Some(fix(lead, Field::AdresseComplete))
        }
        (Some(Note::ReadBack(_) | Note::WhatToFix(_)), Some(false)) if about_phone => {
            Some(fix(lead, Field::Telephone))
        }
        (Some(Note::ReadBack(_)), Some(true)) => Some(after_read_back(
            lead,
            &format!("{prefix}{}", prompts::read_back_confirmed(language)),
            Note::Confirmed,
            None,
        )),
        (Some(Note::ReadBack(_)), Some(false)) => Some(Reply {
            outcome: continuing(
                lead,
                None,
                format!("{prefix}{}", prompts::what_to_fix(language)),
            ),
            accepted: true,
            note: Some(Note::WhatToFix(round)),
        }),
        (Some(Note::WhatToFix(_)), _) if names(&["adresse", "address", "rue", "street"]) => {
            Some(Reply {
                outcome: continuing(
                    lead,
                    None,
                    format!(
                        "{prefix}{}",
                        prompts::fix_question(Field::AdresseComplete, language)
                    ),
                ),
                accepted: true,
                note: Some(Note::Fix(Field::AdresseComplete, round)),
            })
        }
        (Some(Note::WhatToFix(_)), _)
            if names(&[
                "numero",
                "telephone",
                "number",
                "phone",
                "cellulaire",
                "cell",
            ]) =>
        {
            Some(Reply {
                outcome: continuing(
                    lead,
                    None,
                    format!(
                        "{prefix}{}",
                        prompts::fix_question(Field::Telephone, language)
                    ),
                ),
                accepted: true,
                note: Some(Note::Fix(Field::Telephone, round)),
            })
        }
        (Some(Note::ReadBack(_)), None) if lead.current_field().is_some() => {
            // Not about the read-back: the caller went on to the next answer.
            None
        }
        (Some(Note::ReadBack(_)), _) => Some(again(lead, "", None)),
        (_, Some(true)) => Some(after_read_back(
            lead,
            &format!("{prefix}{}", prompts::read_back_confirmed(language)),
            Note::Confirmed,
            None,
        )),
        _ => Some(again(lead, "", None)),
    }
}

/// Nothing but fillers and politeness after « non »: a bare no.
fn is_blank_after_no(rest: &str) -> bool {
    crate::text::words(rest).iter().all(|w| {
        FILLERS.contains(&w.as_str())
            || matches!(
                w.as_str(),
                "c" | "est"
                    | "pas"
                    | "ca"
                    | "exact"
                    | "correct"
                    | "bon"
                    | "that"
                    | "s"
                    | "not"
                    | "right"
                    | "it"
                    | "isn"
                    | "t"
                    | "is"
                    | "merci"
                    | "thanks"
            )
    })
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
