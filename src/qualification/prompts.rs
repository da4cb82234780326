//! What Myriam says, in Québec French (vouvoiement, short sentences that sound natural through
//! text-to-speech) and in English.

use crate::domain::Language;

use super::lead::{Field, Lead};

/// What the greeting says besides hello: the disclosure (on by default, `CALL_DISCLOSURE`) and
/// whether the office is open (`BUSINESS_HOURS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Say that the caller speaks with a virtual assistant and that the call may be recorded.
    pub disclosure: bool,
    /// The office is open now; outside hours the greeting says so and offers to take the request.
    pub office_open: bool,
}

impl Default for Greeting {
    fn default() -> Self {
        Self {
            disclosure: true,
            office_open: true,
        }
    }
}

/// The disclosure sentence: a virtual assistant, and the call may be recorded to handle the
/// request.
pub fn disclosure(language: Language) -> &'static str {
    match language {
        Language::Fr => {
            "Bonjour, vous parlez à Myriam, l'assistante virtuelle de BP Émondage; \
             l'appel peut être enregistré pour traiter votre demande."
        }
        Language::En => {
            "Hello, you're speaking with Myriam, BP Émondage's virtual assistant; \
             this call may be recorded to handle your request."
        }
    }
}

/// Said outside business hours, before the first question.
pub fn office_closed(language: Language) -> &'static str {
    match language {
        Language::Fr => "Nos bureaux sont fermés en ce moment, mais je peux prendre votre demande.",
        Language::En => "Our office is closed right now, but I can take your request.",
    }
}

/// The greeting and the first question. Its first sentence is the disclosure unless it is off.
pub fn opening(language: Language, greeting: Greeting) -> String {
    let hello = if greeting.disclosure {
        disclosure(language)
    } else {
        match language {
            Language::Fr => "Bonjour, vous êtes bien chez BP Émondage. Je suis Myriam.",
            Language::En => "Hello, you've reached BP Émondage. I'm Myriam.",
        }
    };
    let closed = if greeting.office_open {
        String::new()
    } else {
        format!(" {}", office_closed(language))
    };
    format!(
        "{hello}{closed} {}",
        question(Field::NomComplet, language, None)
    )
}

/// The question for `field`. For the phone, `offered` is the caller-ID number read back for a yes.
pub fn question(field: Field, language: Language, offered: Option<&str>) -> String {
    use Field::{AdresseComplete, Description, NomComplet, Telephone, TypeService, Urgence};
    match (language, field) {
        (Language::Fr, NomComplet) => "Pour commencer, quel est votre nom complet?".to_owned(),
        (Language::Fr, Telephone) => match offered {
            Some(spoken) => format!("Est-ce qu'on peut vous rappeler au {spoken}?"),
            None => "À quel numéro de téléphone peut-on vous rappeler?".to_owned(),
        },
        (Language::Fr, AdresseComplete) => {
            "Quelle est l'adresse des travaux? Le numéro civique, la rue et la ville.".to_owned()
        }
        (Language::Fr, TypeService) => {
            "De quel service avez-vous besoin? Par exemple de l'élagage, \
             l'abattage d'un arbre, de l'essouchement ou la taille d'une haie."
                .to_owned()
        }
        (Language::Fr, Description) => "Pouvez-vous me décrire un peu la situation?".to_owned(),
        (Language::Fr, Urgence) => "Est-ce que c'est urgent?".to_owned(),
        (Language::En, NomComplet) => "To begin, what is your full name?".to_owned(),
        (Language::En, Telephone) => match offered {
            Some(spoken) => format!("Can we call you back at {spoken}?"),
            None => "What phone number can we call you back at?".to_owned(),
        },
        (Language::En, AdresseComplete) => {
            "What is the address of the job? The street number, the street and the city.".to_owned()
        }
        (Language::En, TypeService) => "What service do you need? For example tree pruning, \
             tree removal, stump grinding or hedge trimming."
            .to_owned(),
        (Language::En, Description) => "Could you briefly describe the situation?".to_owned(),
        (Language::En, Urgence) => "Is it urgent?".to_owned(),
    }
}

/// The question for the lead's current field.
pub fn question_for(lead: &Lead, field: Field) -> String {
    let offered = lead
        .offered_phone
        .as_ref()
        .map(crate::domain::PhoneNumber::spoken);
    question(field, lead.language, offered.as_deref())
}

/// A short thanks after an accepted answer.
pub fn acknowledgement(field: Field, lead: &Lead) -> String {
    let first = lead
        .nom_complet
        .as_ref()
        .map(super::parsing::PersonName::first);
    match (lead.language, field, first) {
        (Language::Fr, Field::NomComplet, Some(first)) => format!("Merci, {first}."),
        (Language::Fr, Field::Telephone, _) => "Parfait.".to_owned(),
        (Language::Fr, Field::AdresseComplete, _) => "C'est noté.".to_owned(),
        (Language::Fr, Field::TypeService, _) => "Très bien.".to_owned(),
        (Language::Fr, Field::Description, _) => "Merci pour ces détails.".to_owned(),
        (Language::Fr, _, _) => "Merci.".to_owned(),
        (Language::En, Field::NomComplet, Some(first)) => format!("Thank you, {first}."),
        (Language::En, Field::Telephone, _) => "Perfect.".to_owned(),
        (Language::En, Field::AdresseComplete, _) => "Got it.".to_owned(),
        (Language::En, Field::TypeService, _) => "Very well.".to_owned(),
        (Language::En, Field::Description, _) => "Thanks for the details.".to_owned(),
        (Language::En, _, _) => "Thank you.".to_owned(),
    }
}

/// Asking again after a rejected answer (first and second failures).
pub fn reask(field: Field, language: Language) -> String {
    use Field::{AdresseComplete, Description, NomComplet, Telephone, TypeService, Urgence};
    match (language, field) {
        (Language::Fr, NomComplet) => {
            "Je n'ai pas bien saisi votre nom. Pouvez-vous me le répéter?".to_owned()
        }
        (Language::Fr, Telephone) => {
            "Pouvez-vous me redire le numéro, chiffre par chiffre?".to_owned()
        }
        (Language::Fr, AdresseComplete) => "Je n'ai pas bien compris l'adresse. Pouvez-vous me \
             donner le numéro civique et le nom de la rue?"
            .to_owned(),
        (Language::Fr, TypeService) => "Pardon, de quel service s'agit-il? Élagage, abattage, \
             essouchement, taille de haie, urgence après une tempête, plantation ou évaluation?"
            .to_owned(),
        (Language::Fr, Description) => {
            "Pouvez-vous m'en dire un peu plus sur les travaux?".to_owned()
        }
        (Language::Fr, Urgence) => {
            "Pardon, est-ce urgent? Répondez simplement oui ou non.".to_owned()
        }
        (Language::En, NomComplet) => {
            "Sorry, I didn't catch your name. Could you repeat it?".to_owned()
        }
        (Language::En, Telephone) => "Could you repeat the number, one digit at a time?".to_owned(),
        (Language::En, AdresseComplete) => "Sorry, I didn't get the address. Could you give me \
             the street number and the street name?"
            .to_owned(),
        (Language::En, TypeService) => "Sorry, which service is it? Pruning, removal, stump \
             grinding, hedge trimming, storm damage, planting or an assessment?"
            .to_owned(),
        (Language::En, Description) => "Could you tell me a little more about the job?".to_owned(),
        (Language::En, Urgence) => "Sorry, is it urgent? Just answer yes or no.".to_owned(),
    }
}

/// Asking a last time, with an example (third failure).
pub fn reask_with_example(field: Field, language: Language) -> String {
    use Field::{AdresseComplete, Description, NomComplet, Telephone, TypeService, Urgence};
    match (language, field) {
        (Language::Fr, NomComplet) => {
            "Dites simplement votre prénom et votre nom, par exemple : Marie Tremblay.".to_owned()
        }
        (Language::Fr, Telephone) => "Dites le numéro chiffre par chiffre, par exemple : cinq un \
             quatre, cinq cinq cinq, un deux trois quatre."
            .to_owned(),
        (Language::Fr, AdresseComplete) => "Par exemple : 123, rue Principale, à Laval. Vous \
             pouvez aussi me donner votre code postal."
            .to_owned(),
        (Language::Fr, TypeService) => {
            "Par exemple : élagage, abattage, essouchement ou taille de haie.".to_owned()
        }
        (Language::Fr, Description) => {
            "Par exemple : un gros érable penche vers la maison.".to_owned()
        }
        (Language::Fr, Urgence) => {
            "Répondez oui si c'est urgent, ou non si ça peut attendre.".to_owned()
        }
        (Language::En, NomComplet) => {
            "Just say your first and last name, for example: Mary Smith.".to_owned()
        }
        (Language::En, Telephone) => "Say the number one digit at a time, for example: five one \
             four, five five five, one two three four."
            .to_owned(),
        (Language::En, AdresseComplete) => "For example: 123 Main Street, Laval. You can also \
             give me your postal code."
            .to_owned(),
        (Language::En, TypeService) => {
            "For example: pruning, tree removal, stump grinding or hedge trimming.".to_owned()
        }
        (Language::En, Description) => {
            "For example: a big maple is leaning toward the house.".to_owned()
        }
        (Language::En, Urgence) => "Answer yes if it is urgent, or no if it can wait.".to_owned(),
    }
}

/// A phone number that was heard but is not valid, read back digit by digit.
pub fn phone_not_valid(understood: &str, language: Language) -> String {
    let spoken = crate::domain::spoken_digits(understood);
    match language {
        Language::Fr => format!(
            "J'ai compris {spoken}, mais ce numéro ne semble pas valide. {}",
            reask(Field::Telephone, language)
        ),
        Language::En => format!(
            "I heard {spoken}, but that doesn't seem to be a valid number. {}",
            reask(Field::Telephone, language)
        ),
    }
}

/// The words could be grouped into more than one number.
pub fn phone_ambiguous(language: Language) -> String {
    match language {
        Language::Fr => format!(
            "Je veux être certaine de bien noter votre numéro. {}",
            reask(Field::Telephone, language)
        ),
        Language::En => format!(
            "I want to be sure I have your number right. {}",
            reask(Field::Telephone, language)
        ),
    }
}

/// The caller said no to the caller-ID number.
pub fn phone_offer_declined(language: Language) -> String {
    match language {
        Language::Fr => "D'accord. À quel numéro de téléphone peut-on vous rappeler?".to_owned(),
        Language::En => "All right. What phone number can we call you back at?".to_owned(),
    }
}

/// After the sixth answer: read back name, phone (digit by digit) and service, then goodbye.
pub fn confirmation(lead: &Lead) -> String {
    let name = lead
        .nom_complet
        .as_ref()
        .map_or("", super::parsing::PersonName::as_str);
    let phone = lead
        .telephone
        .as_ref()
        .map(crate::domain::PhoneNumber::spoken)
        .unwrap_or_default();
    let service = lead.type_service.map_or("", |s| s.label(lead.language));
    let urgent = lead.urgence == Some(true);
    let safety = if urgent
        && lead
            .description
            .as_ref()
            .is_some_and(|d| mentions_danger(d.as_str()))
    {
        match lead.language {
            Language::Fr => {
                " Restez loin de l'arbre et des fils, et faites le 911 si quelqu'un est en danger."
            }
            Language::En => {
                " Stay away from the tree and the wires, and call 911 if anyone is in danger."
            }
        }
    } else {
        ""
    };
    match lead.language {
        Language::Fr => format!(
            "Merci, {name}. Je récapitule : on vous rappelle au {phone}, pour {service}.{} \
             Un membre de l'équipe de BP Émondage vous contactera très bientôt.{safety} Bonne journée!",
            if urgent {
                " Nous traiterons votre demande en priorité."
            } else {
                ""
            }
        ),
        Language::En => format!(
            "Thank you, {name}. To recap: we'll call you back at {phone} about {service}.{} \
             Someone from the BP Émondage team will contact you very soon.{safety} Have a great day!",
            if urgent {
                " We'll treat it as a priority."
            } else {
                ""
            }
        ),
    }
}

/// Words (folded) that put people in danger: electrical wires, injuries, someone trapped.
const DANGER_WORDS: &[&str] = &[
    "fil",
    "fils",
    "electrique",
    "electriques",
    "hydro",
    "haute tension",
    "danger",
    "dangereux",
    "dangereuse",
    "blesse",
    "blessee",
    "blesses",
    "coince",
    "coincee",
    "wire",
    "wires",
    "power line",
    "power lines",
    "powerline",
    "electrical",
    "live wire",
    "injured",
    "hurt",
    "trapped",
];

/// True when a description mentions electrical wires or a danger to people.
pub fn mentions_danger(description: &str) -> bool {
    let folded = crate::text::fold(description);
    DANGER_WORDS
        .iter()
        .any(|w| crate::text::contains_phrase(&folded, w))
}

/// After the last failed attempt: offer a callback and say goodbye.
pub fn abandon(lead: &Lead) -> String {
    let callback = match (
        lead.language,
        lead.telephone.as_ref().or(lead.offered_phone.as_ref()),
    ) {
        (Language::Fr, Some(phone)) => format!(
            "Un membre de l'équipe vous rappellera au {} pour compléter votre demande.",
            phone.spoken()
        ),
        (Language::Fr, None) => {
            "N'hésitez pas à nous rappeler, un membre de l'équipe pourra vous aider.".to_owned()
        }
        (Language::En, Some(phone)) => format!(
            "Someone from our team will call you back at {} to complete your request.",
            phone.spoken()
        ),
        (Language::En, None) => {
            "Please feel free to call us again, someone from our team will help you.".to_owned()
        }
    };
    match lead.language {
        Language::Fr => format!(
            "Je suis désolée, je n'arrive pas à bien vous comprendre. {callback} Merci de votre \
             appel et bonne journée!"
        ),
        Language::En => format!(
            "I'm sorry, I'm having trouble understanding. {callback} Thank you for calling, have a \
             good day!"
        ),
    }
}

/// An earlier answer was corrected.
pub fn correction_done(language: Language) -> &'static str {
    match language {
        Language::Fr => "C'est corrigé, merci.",
        Language::En => "Got it, I've corrected that.",
    }
}

/// A correction whose new value could not be understood.
pub fn correction_not_understood(language: Language) -> &'static str {
    match language {
        Language::Fr => "Je n'ai pas bien compris la correction.",
        Language::En => "Sorry, I didn't understand the correction.",
    }
}

/// The caller asked for English (or French). Switching to English repeats the disclosure in
/// English when it is on.
pub fn language_switched(language: Language, disclosure: bool) -> &'static str {
    match (language, disclosure) {
        (Language::Fr, _) => "Bien sûr, continuons en français.",
        (Language::En, true) => {
            "Of course, let's continue in English. I'm Myriam, BP Émondage's virtual assistant; \
             this call may be recorded to handle your request."
        }
        (Language::En, false) => "Of course, let's continue in English.",
    }
}

/// The machine's answer to a request for a person (the IVR or the assistant then hands the call
/// over).
pub fn person_requested(language: Language) -> &'static str {
    match language {
        Language::Fr => "Bien sûr, je vous mets en contact avec l'équipe.",
        Language::En => "Of course, I'll put you in touch with the team.",
    }
}

/// Before `<Dial>`: the office line is ringing.
pub fn transferring(language: Language) -> &'static str {
    match language {
        Language::Fr => "Un instant, je vous transfère à un membre de l'équipe.",
        Language::En => "One moment, I'm transferring you to a member of our team.",
    }
}

/// Why the caller reaches voicemail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailReason {
    /// Outside business hours.
    OfficeClosed,
    /// No office line is configured.
    NoLine,
    /// The office line did not answer (busy, no answer, failed).
    NoAnswer,
}

/// Before `<Record>`: who will call back, and at which number when we know it.
pub fn voicemail(lead: &Lead, reason: VoicemailReason) -> String {
    let phone = lead
        .telephone
        .as_ref()
        .or(lead.offered_phone.as_ref())
        .map(crate::domain::PhoneNumber::spoken);
    match lead.language {
        Language::Fr => {
            let why = match reason {
                VoicemailReason::OfficeClosed => "Nos bureaux sont fermés en ce moment.",
                VoicemailReason::NoLine => "Personne n'est disponible pour prendre l'appel.",
                VoicemailReason::NoAnswer => "Désolée, personne de l'équipe n'a pu répondre.",
            };
            let back = phone.map_or_else(
                || "Un membre de l'équipe de BP Émondage vous rappellera.".to_owned(),
                |p| format!("Un membre de l'équipe de BP Émondage vous rappellera au {p}."),
            );
            format!("{why} {back} Laissez-nous un message après le bip, puis raccrochez.")
        }
        Language::En => {
            let why = match reason {
                VoicemailReason::OfficeClosed => "Our office is closed right now.",
                VoicemailReason::NoLine => "Nobody is available to take the call.",
                VoicemailReason::NoAnswer => "Sorry, nobody from the team could answer.",
            };
            let back = phone.map_or_else(
                || "Someone from the BP Émondage team will call you back.".to_owned(),
                |p| format!("Someone from the BP Émondage team will call you back at {p}."),
            );
            format!("{why} {back} Please leave a message after the beep, then hang up.")
        }
    }
}

/// After the recording (or when nothing was recorded).
/// The last question when `CALLER_SMS=1`: may Myriam text a confirmation?
pub fn text_question(language: Language) -> &'static str {
    match language {
        Language::Fr => "Voulez-vous recevoir un texto de confirmation?",
        Language::En => "Would you like a confirmation by text message?",
    }
}

/// The goodbye after the text question: `yes` (a text is coming) or not.
pub fn text_goodbye(language: Language, yes: bool) -> &'static str {
    match (language, yes) {
        (Language::Fr, true) => {
            "Parfait, vous recevrez un texto de confirmation. Merci et bonne journée!"
        }
        (Language::Fr, false) => "D'accord, pas de texto. Merci et bonne journée!",
        (Language::En, true) => "Great, you will get a confirmation by text. Thank you, goodbye!",
        (Language::En, false) => "All right, no text message. Thank you, goodbye!",
    }
}

pub fn voicemail_goodbye(language: Language) -> &'static str {
    match language {
        Language::Fr => "Merci, votre demande est notée. Bonne journée!",
        Language::En => "Thank you, your request is noted. Have a good day!",
    }
}

/// Nothing was heard.
pub fn no_speech(language: Language) -> &'static str {
    match language {
        Language::Fr => "Je n'ai rien entendu.",
        Language::En => "I didn't hear anything.",
    }
}

/// A first name alone: ask for the family name.
pub fn family_name_question(first: &str, language: Language) -> String {
    match language {
        Language::Fr => format!("Merci, {first}. Et votre nom de famille?"),
        Language::En => format!("Thank you, {first}. And your last name?"),
    }
}

/// Something the caller said besides the answer asked for was noted.
pub fn noted(language: Language) -> &'static str {
    match language {
        Language::Fr => "C'est noté.",
        Language::En => "Got it.",
    }
}

/// The address and the callback number read back before the recap.
pub fn read_back(lead: &Lead) -> String {
    let address = lead
        .adresse_complete
        .as_ref()
        .map_or("", super::parsing::Address::as_str);
    let phone = lead
        .telephone
        .as_ref()
        .map(crate::domain::PhoneNumber::spoken)
        .unwrap_or_default();
    match lead.language {
        Language::Fr => {
            format!("J'ai noté : {address}, et on vous rappelle au {phone}. Est-ce exact?")
        }
        Language::En => {
            format!("I have {address}, and we'll call you back at {phone}. Is that right?")
        }
    }
}

/// A bare « non » at the read-back.
pub fn what_to_fix(language: Language) -> &'static str {
    match language {
        Language::Fr => "D'accord. Qu'est-ce que je dois corriger : l'adresse ou le numéro?",
        Language::En => "All right. What should I correct: the address or the number?",
    }
}

/// The caller named what to fix at the read-back without the right value.
pub fn fix_question(field: Field, language: Language) -> &'static str {
    match (language, field) {
        (Language::Fr, Field::Telephone) => "Quel est le bon numéro?",
        (Language::Fr, _) => "Quelle est la bonne adresse?",
        (Language::En, Field::Telephone) => "What is the right number?",
        (Language::En, _) => "What is the right address?",
    }
}

/// The read-back was disputed twice: the lead is kept as last said, for staff to check.
pub fn read_back_kept(language: Language) -> &'static str {
    match language {
        Language::Fr => {
            "D'accord, je le note tel quel; un membre de l'équipe le vérifiera avec vous."
        }
        Language::En => {
            "All right, I'll note it as is; someone from the team will check it with you."
        }
    }
}

/// The caller confirmed the read-back.
pub fn read_back_confirmed(language: Language) -> &'static str {
    match language {
        Language::Fr => "Parfait.",
        Language::En => "Perfect.",
    }
}

/// A short, honest answer to a question the caller asked.
pub fn answer_to(question: super::listen::Question, language: Language) -> String {
    use super::listen::Question;
    match (question, language) {
        (Question::Price, Language::Fr) => {
            "Un estimateur vous donnera un prix lors d'une visite gratuite.".to_owned()
        }
        (Question::Price, Language::En) => {
            "An estimator will give you a price during a free visit.".to_owned()
        }
        (Question::Hours, Language::Fr) => "Je prends les demandes en tout temps, et l'équipe \
             vous rappelle pendant les heures de bureau."
            .to_owned(),
        (Question::Hours, Language::En) => "I take requests at any time, and the team calls you \
             back during office hours."
            .to_owned(),
        (Question::Services { snow }, language) => {
            let labels = super::parsing::SERVICES_OFFERED
                .iter()
                .map(|s| s.label(language))
                .collect::<Vec<_>>();
            let (head, last) = labels.split_at(labels.len().saturating_sub(1));
            let joined = match language {
                Language::Fr => format!("{} et {}", head.join(", "), last.join("")),
                Language::En => format!("{} and {}", head.join(", "), last.join("")),
            };
            match (language, snow) {
                (Language::Fr, true) => {
                    format!("Nous ne faisons pas de déneigement. BP Émondage fait {joined}.")
                }
                (Language::Fr, false) => format!("BP Émondage fait {joined}."),
                (Language::En, true) => {
                    format!("We don't do snow removal. BP Émondage does {joined}.")
                }
                (Language::En, false) => format!("BP Émondage does {joined}."),
            }
        }
    }
}
