//! The SMS bodies: the one staff receive (French), and the caller's own confirmation
//! (`CALLER_SMS=1`, in the caller's language); at most three SMS segments.
//!
//! The text is made GSM-7 (accents outside the GSM alphabet lose them, typographic quotes become
//! plain ones), because a single character outside it would switch the whole message to UCS-2
//! and cut the room from 459 to 201 characters. Long fields are shortened (the description first,
//! then the address, then the name) until the message fits.

use crate::qualification::Lead;
use crate::store::AlertEvent;

/// At most this many SMS segments per alert.
pub const MAX_SEGMENTS: usize = 3;

/// The GSM 03.38 basic character set.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡\
    ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table: two septets each.
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// How a text would be encoded and in how many segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub gsm7: bool,
    pub count: usize,
}

/// The encoding and segment count of `text` (160/153 septets in GSM-7, 70/67 UTF-16 units in
/// UCS-2).
pub fn segments(text: &str) -> Segments {
    let gsm7 = text
        .chars()
        .all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c));
    let (units, single, multi) = if gsm7 {
        let septets: usize = text
            .chars()
            .map(|c| if GSM_EXTENSION.contains(c) { 2 } else { 1 })
            .sum();
        (septets, 160, 153)
    } else {
        (text.encode_utf16().count(), 70, 67)
    };
    let count = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    Segments { gsm7, count }
}

/// `text` in the GSM-7 alphabet: letters outside it lose their accent, typographic punctuation
/// becomes plain, anything else unknown becomes `?`.
pub fn to_gsm7(text: &str) -> String {
    text.chars()
        .flat_map(|c| -> Vec<char> {
            if GSM_BASIC.contains(c) {
                return vec![c];
            }
            match c {
                '’' | '‘' | 'ʼ' | '`' => vec!['\''],
                '«' | '»' | '“' | '”' => vec!['"'],
                '–' | '—' | '‐' | '‑' => vec!['-'],
                '…' => vec!['.', '.', '.'],
                '\u{a0}' | '\t' => vec![' '],
                'œ' => vec!['o', 'e'],
                'Œ' => vec!['O', 'E'],
                'ç' => vec!['c'],
                'À' | 'Â' => vec!['A'],
                'È' | 'Ê' | 'Ë' => vec!['E'],
                'Î' | 'Ï' => vec!['I'],
                'Ô' => vec!['O'],
                'Ù' | 'Û' => vec!['U'],
                other => {
                    let plain = crate::text::strip_accent(other);
                    if GSM_BASIC.contains(plain) {
                        vec![plain]
                    } else {
                        vec!['?']
                    }
                }
            }
        })
        .collect()
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

/// The fields of an alert, before it is fitted.
struct Fields {
    name: String,
    phone: String,
    address: String,
    service: String,
    /// The caller's answer to the urgency question, if given.
    answered_urgent: Option<bool>,
    /// The request sounds urgent (the answer, a storm, a danger in the description).
    urgent: bool,
    description: String,
}

fn compose(event: AlertEvent, f: &Fields, link: Option<&str>, reference: &str) -> String {
    let head = match (event, f.urgent) {
        (AlertEvent::Qualified, true) => "URGENT - BP Emondage: nouvelle demande",
        (AlertEvent::Qualified, false) => "BP Emondage: nouvelle demande",
        (AlertEvent::Voicemail, _) => "URGENT - BP Emondage: message vocal hors heures",
        // The caller's own confirmation has its body ([`render_confirmation`]).
        (AlertEvent::Confirmation, _) => "BP Emondage: demande confirmee",
    };
    let mut lines = vec![
        head.to_owned(),
        format!("Nom: {}", f.name),
        format!("Rappel: {}", f.phone),
        format!("Adresse: {}", f.address),
        format!("Service: {}", f.service),
        format!(
            "Urgent: {}",
            match f.answered_urgent {
                Some(true) => "oui",
                Some(false) => "non",
                None => "non precise",
            }
        ),
    ];
    if !f.description.is_empty() {
        lines.push(format!("\"{}\"", f.description));
    }
    if let Some(link) = link {
        lines.push(link.to_owned());
    }
    lines.push(format!("Ref. {reference}"));
    to_gsm7(&lines.join("\n"))
}

/// The alert about `lead`: name, callback number, address, service, urgency and the start of the
/// description, the lead's console link, and `reference` (found again at Twilio if a send's
/// outcome is unknown). Fits in [`MAX_SEGMENTS`] segments.
pub fn render(lead: &Lead, event: AlertEvent, link: Option<&str>, reference: &str) -> String {
    let phone = lead
        .telephone
        .as_ref()
        .or(lead.offered_phone.as_ref())
        .map_or_else(|| "inconnu".to_owned(), |p| p.as_e164().to_owned());
    let dash = || "-".to_owned();
    let mut fields = Fields {
        name: lead
            .nom_complet
            .as_ref()
            .map_or_else(dash, |n| n.as_str().to_owned()),
        phone,
        address: lead
            .adresse_complete
            .as_ref()
            .map_or_else(dash, |a| a.as_str().to_owned()),
        service: lead
            .type_service
            .map_or_else(dash, |s| s.label(crate::domain::Language::Fr).to_owned()),
        answered_urgent: lead.urgence,
        urgent: crate::calls::sounds_urgent(lead),
        description: lead
            .description
            .as_ref()
            .map(|d| shorten(d.as_str(), 120))
            .unwrap_or_default(),
    };
    // Shorten the longest fields until the message fits; the link and reference always stay.
    let mut text = compose(event, &fields, link, reference);
    let budget = [
        (0usize, 120usize),
        (1, 60),
        (2, 40),
        (0, 40),
        (0, 0),
        (1, 30),
        (2, 24),
    ];
    let mut step = 0;
    while segments(&text).count > MAX_SEGMENTS && step < budget.len() {
        let (field, max) = budget[step];
        match field {
            0 => fields.description = shorten(&fields.description, max),
            1 => fields.address = shorten(&fields.address, max),
            _ => fields.name = shorten(&fields.name, max),
        }
        if field == 0 && max == 0 {
            fields.description.clear();
        }
        text = compose(event, &fields, link, reference);
        step += 1;
    }
    text
}

/// The caller's confirmation (`CALLER_SMS=1`), in their language: what was understood (service,
/// address, urgency), when to expect the call back (`open_now`: inside `BUSINESS_HOURS`), how to
/// correct it (call back and give the reference), and `reference`. GSM-7, at most
/// [`MAX_SEGMENTS`] segments (a long address is shortened). No link, no staff data.
pub fn render_confirmation(lead: &Lead, open_now: bool, reference: &str) -> String {
    use crate::domain::Language;
    let language = lead.language;
    let dash = || "-".to_owned();
    let service = lead
        .type_service
        .map_or_else(dash, |s| s.label(language).to_owned());
    let mut address = lead
        .adresse_complete
        .as_ref()
        .map_or_else(dash, |a| a.as_str().to_owned());
    let compose = |address: &str| {
        let lines = match language {
            Language::Fr => [
                "BP Emondage: nous avons bien recu votre demande.".to_owned(),
                format!("Service: {service}"),
                format!("Adresse: {address}"),
                format!(
                    "Urgent: {}",
                    if lead.urgence == Some(true) {
                        "oui"
                    } else {
                        "non"
                    }
                ),
                if open_now {
                    "Nous vous rappelons aujourd'hui, pendant nos heures d'ouverture.".to_owned()
                } else {
                    "Nos bureaux sont fermes: nous vous rappelons des leur ouverture.".to_owned()
                },
                "Une erreur? Rappelez-nous et donnez cette reference.".to_owned(),
                format!("Ref. {reference}"),
            ],
            Language::En => [
                "BP Emondage: we received your request.".to_owned(),
                format!("Service: {service}"),
                format!("Address: {address}"),
                format!(
                    "Urgent: {}",
                    if lead.urgence == Some(true) {
                        "yes"
                    } else {
                        "no"
                    }
                ),
                if open_now {
                    "We will call you back today, during business hours.".to_owned()
                } else {
                    "Our office is closed: we will call you back when it opens.".to_owned()
                },
                "Anything wrong? Call us back and give this reference.".to_owned(),
                format!("Ref. {reference}"),
            ],
        };
        to_gsm7(&lines.join("\n"))
    };
    let mut text = compose(&address);
    for max in [80, 50, 30] {
        if segments(&text).count <= MAX_SEGMENTS {
            break;
        }
        address = shorten(&address, max);
        text = compose(&address);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LeadId, PhoneNumber};
    use crate::qualification::{Address, Description, PersonName, ServiceType};

    fn lead(name: &str, address: &str, description: &str) -> Lead {
        let mut lead = Lead::new(LeadId::new());
        lead.nom_complet = PersonName::try_from(name).ok();
        lead.telephone = PhoneNumber::try_from("514 555 0123").ok();
        lead.adresse_complete = Address::try_from(address).ok();
        lead.type_service = Some(ServiceType::Abattage);
        lead.description = Description::try_from(description).ok();
        lead.urgence = Some(true);
        lead
    }

    #[test]
    fn the_callers_confirmation_is_in_their_language_gsm7_and_short() {
        let mut fr = lead("Marie Tremblay", "123 rue Principale, Laval", "Un érable");
        let text = render_confirmation(&fr, true, "1f3a9c0d22be");
        assert_eq!(
            text,
            "BP Emondage: nous avons bien recu votre demande.\n\
             Service: l'abattage d'un arbre\n\
             Adresse: 123 rue Principale, Laval\n\
             Urgent: oui\n\
             Nous vous rappelons aujourd'hui, pendant nos heures d'ouverture.\n\
             Une erreur? Rappelez-nous et donnez cette reference.\n\
             Ref. 1f3a9c0d22be"
        );
        assert!(segments(&text).gsm7);
        assert!(
            !text.contains("Marie") && !text.contains("5550123"),
            "no name, no number"
        );
        fr.language = crate::domain::Language::En;
        fr.urgence = Some(false);
        let en = render_confirmation(&fr, false, "1f3a9c0d22be");
        assert!(en.starts_with("BP Emondage: we received your request.\nService: tree removal\n"));
        assert!(
            en.contains("Urgent: no\nOur office is closed: we will call you back when it opens.")
        );
        assert!(en.ends_with("Ref. 1f3a9c0d22be"));
        let long = lead(
            "Marie Tremblay",
            &"999 boulevard des Érables-Argentés ".repeat(12),
            "x",
        );
        let text = render_confirmation(&long, true, "1f3a9c0d22be");
        assert!(segments(&text).count <= MAX_SEGMENTS, "{text}");
        assert!(text.ends_with("Ref. 1f3a9c0d22be"));
    }

    #[test]
    fn counts_segments_in_both_encodings() {
        assert_eq!(
            segments(&"a".repeat(160)),
            Segments {
                gsm7: true,
                count: 1
            }
        );
        assert_eq!(segments(&"a".repeat(161)).count, 2);
        assert_eq!(segments(&"a".repeat(459)).count, 3);
        assert_eq!(segments(&"a".repeat(460)).count, 4);
        // An extension character costs two septets.
        assert_eq!(segments(&format!("{}€", "a".repeat(159))).count, 2);
        let ucs = format!("ê{}", "a".repeat(69));
        assert_eq!(
            segments(&ucs),
            Segments {
                gsm7: false,
                count: 1
            }
        );
        assert_eq!(segments(&format!("ê{}", "a".repeat(70))).count, 2);
    }

    #[test]
    fn french_text_becomes_gsm7_keeping_the_accents_it_has() {
        let text = to_gsm7("Élagage d’un érable « près » du fil — ça brûle à Québec œuvre");
        assert!(segments(&text).gsm7, "{text}");
        assert_eq!(
            text,
            "Élagage d'un érable \" près \" du fil - ca brule à Québec oeuvre"
        );
    }

    #[test]
    fn an_alert_names_the_lead_and_links_to_it() {
        let lead = lead(
            "Marie Tremblay",
            "123 rue Principale Laval",
            "un gros érable est tombé sur le toit près des fils électriques",
        );
        let link = format!("https://gw.example/console/leads/{}", lead.id);
        let text = render(&lead, AlertEvent::Qualified, Some(&link), "ab12cd34");
        for part in [
            "URGENT",
            "Marie Tremblay",
            "+15145550123",
            "123 rue Principale Laval",
            "Urgent: oui",
            "tombé sur le toit",
            link.as_str(),
            "Ref. ab12cd34",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert!(segments(&text).gsm7);
        assert!(segments(&text).count <= MAX_SEGMENTS);
    }

    #[test]
    fn long_fields_are_shortened_to_three_segments() {
        let long = "très ".repeat(200);
        for (name, address, description) in [
            ("Marie Tremblay", "123 rue Principale Laval", long.as_str()),
            (
                "Marie-Ève Bouchard-Létourneau de la Montagne",
                &format!(
                    "12345 boulevard {} Saint-Jean-sur-Richelieu",
                    "Très Long ".repeat(20)
                ),
                long.as_str(),
            ),
        ] {
            let lead = lead(name, address, description);
            let link = format!(
                "https://gateway.bp-emondage.example/console/leads/{}",
                lead.id
            );
            let text = render(&lead, AlertEvent::Qualified, Some(&link), "ab12cd34");
            let s = segments(&text);
            assert!(
                s.gsm7 && s.count <= MAX_SEGMENTS,
                "{} segments: {text}",
                s.count
            );
            assert!(
                text.contains(&link) && text.contains("Ref. ab12cd34"),
                "{text}"
            );
            assert!(text.contains("+15145550123"), "{text}");
        }
    }

    #[test]
    fn a_voicemail_alert_without_answers_still_fits() {
        let mut lead = Lead::new(LeadId::new());
        lead.offered_phone = PhoneNumber::try_from("+14505550199").ok();
        let text = render(&lead, AlertEvent::Voicemail, None, "ref");
        assert!(text.contains("message vocal"), "{text}");
        assert!(text.contains("+14505550199"), "{text}");
        assert_eq!(segments(&text).count, 1);
    }
}
