//! The qualification machine end to end: a full call in French and one in English with every
//! `Outcome` field checked, retries, corrections, language switches, the caller-ID confirmation,
//! and property tests that no input panics.

use myriam::domain::{Language, LeadId, LeadStatus, PhoneNumber};
use std::collections::BTreeMap;
use std::sync::Mutex;

use myriam::qualification::{Field, HistoryMessage, Lead, machine};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The leads of a test, as the gateway's store would hold them between answers.
#[derive(Default)]
struct MemoryLeadStore {
    leads: Mutex<BTreeMap<LeadId, Lead>>,
}

impl MemoryLeadStore {
    fn insert(&self, lead: Lead) {
        self.leads.lock().unwrap().insert(lead.id, lead);
    }

    fn get(&self, id: LeadId) -> Option<Lead> {
        self.leads.lock().unwrap().get(&id).cloned()
    }
}

fn new_lead(store: &MemoryLeadStore, caller_id: Option<&str>) -> LeadId {
    let offered = caller_id.map(|c| PhoneNumber::try_from(c).unwrap());
    let lead = Lead::new(LeadId::new()).with_offered_phone(offered);
    let id = lead.id;
    store.insert(lead);
    id
}

fn say(store: &MemoryLeadStore, id: LeadId, input: &str) -> Value {
    let mut lead = store.get(id).expect("the lead exists");
    let outcome = machine::process_response(&mut lead, input, &[]);
    store.insert(lead);
    let text = serde_json::to_string(&outcome).unwrap();
    assert!(
        text.starts_with(r#"{"success":"#) && text.contains(r#","lead_data":"#),
        "documented key order: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Checks every field of an outcome except `message` (checked by the caller) and `lead_data`.
fn assert_step(
    v: &Value,
    status: &str,
    next_step: Option<u8>,
    field_updated: Option<&str>,
    complete: bool,
) {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "field_updated",
            "is_complete",
            "lead_data",
            "message",
            "next_step",
            "status",
            "success"
        ],
        "exactly the documented keys: {v}"
    );
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(
        v["success"],
        status == "continue" || status == "complete",
        "{v}"
    );
    assert_eq!(v["next_step"], json!(next_step), "{v}");
    assert_eq!(v["field_updated"], json!(field_updated), "{v}");
    assert_eq!(v["is_complete"], complete, "{v}");
}

#[tokio::test]
async fn a_full_call_in_french() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+15145550199"));

    let v = say(&store, id, "euh bonjour je m'appelle marie-ève côté");
    assert_step(&v, "continue", Some(2), Some("nom_complet"), false);
    assert_eq!(
        v["message"],
        "Merci, Marie-Ève. Est-ce qu'on peut vous rappeler au 5 1 4, 5 5 5, 0 1 9 9?"
    );
    assert_eq!(v["lead_data"]["nom_complet"], "Marie-Ève Côté");
    assert_eq!(v["lead_data"]["status"], "en_cours");
    assert_eq!(v["lead_data"]["language"], "fr");

    let v = say(&store, id, "oui c'est ça");
    assert_step(&v, "continue", Some(3), Some("telephone"), false);
    assert_eq!(v["lead_data"]["telephone"], "+15145550199");
    assert_eq!(v["lead_data"]["telephone_raw"], "+15145550199");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Parfait. Quelle est l'adresse des travaux?")
    );

    let v = say(
        &store,
        id,
        "c'est au 4567 boulevard saint-laurent montréal h2x1y4",
    );
    assert_step(&v, "continue", Some(4), Some("adresse_complete"), false);
    assert_eq!(
        v["lead_data"]["adresse_complete"],
        "4567 boulevard saint-laurent montréal H2X 1Y4"
    );

    let v = say(&store, id, "euh ben un arbre est tombé sur le toit");
    assert_step(&v, "continue", Some(5), Some("type_service"), false);
    assert_eq!(v["lead_data"]["type_service"], "urgence_tempete");
    assert_eq!(
        v["message"],
        "Très bien. Pouvez-vous me décrire un peu la situation?"
    );

    let v = say(
        &store,
        id,
        "un gros érable a cassé pendant la tempête il bloque l'entrée",
    );
    assert_step(&v, "continue", Some(6), Some("description"), false);
    assert_eq!(
        v["message"],
        "Merci pour ces détails. Est-ce que c'est urgent?"
    );

    let v = say(&store, id, "oui c'est urgent");
    assert_step(&v, "complete", None, Some("urgence"), true);
    assert_eq!(
        v["message"],
        "Merci, Marie-Ève Côté. Je récapitule : on vous rappelle au 5 1 4, 5 5 5, 0 1 9 9, pour une \
         urgence après une tempête. Nous traiterons votre demande en priorité. Un membre de \
         l'équipe de BP Émondage vous contactera très bientôt. Bonne journée!"
    );
    assert_eq!(
        v["lead_data"],
        json!({
            "id": id.to_string(),
            "nom_complet": "Marie-Ève Côté",
            "telephone": "+15145550199",
            "telephone_raw": "+15145550199",
            "adresse_complete": "4567 boulevard saint-laurent montréal H2X 1Y4",
            "type_service": "urgence_tempete",
            "description": "un gros érable a cassé pendant la tempête il bloque l'entrée",
            "urgence": true,
            "status": "qualifie",
            "language": "fr"
        })
    );

    let lead = store.get(id).unwrap();
    assert_eq!(lead.status, LeadStatus::Qualifie);
    assert_eq!(lead.conversation.len(), 12, "six answers and six replies");

    // A retried or late answer changes nothing and repeats the confirmation.
    let again = say(&store, id, "allo?");
    assert_step(&again, "complete", None, None, true);
    assert_eq!(again["lead_data"], v["lead_data"]);
}

#[tokio::test]
async fn a_full_call_in_english() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);

    let v = say(&store, id, "hi my name is John Smith");
    assert_step(&v, "continue", Some(2), Some("nom_complet"), false);
    assert_eq!(v["lead_data"]["language"], "en");
    assert_eq!(
        v["message"],
        "Thank you, John. What phone number can we call you back at?"
    );

    let v = say(
        &store,
        id,
        "five one four, five five five, twelve thirty four",
    );
    assert_step(&v, "continue", Some(3), Some("telephone"), false);
    assert_eq!(v["lead_data"]["telephone"], "+15145551234");
    assert_eq!(
        v["lead_data"]["telephone_raw"],
        "five one four, five five five, twelve thirty four"
    );

    let v = say(&store, id, "my address is 55 Maple Street Westmount");
    assert_step(&v, "continue", Some(4), Some("adresse_complete"), false);
    assert_eq!(
        v["lead_data"]["adresse_complete"],
        "55 Maple Street Westmount"
    );

    let v = say(&store, id, "I need a stump removed");
    assert_step(&v, "continue", Some(5), Some("type_service"), false);
    assert_eq!(v["lead_data"]["type_service"], "essouchement");

    let v = say(&store, id, "old oak stump in the back yard");
    assert_step(&v, "continue", Some(6), Some("description"), false);
    assert_eq!(v["message"], "Thanks for the details. Is it urgent?");

    let v = say(&store, id, "no it can wait");
    assert_step(&v, "complete", None, Some("urgence"), true);
    assert_eq!(
        v["message"],
        "Thank you, John Smith. To recap: we'll call you back at 5 1 4, 5 5 5, 1 2 3 4 about stump \
         grinding. Someone from the BP Émondage team will contact you very soon. Have a great day!"
    );
    assert_eq!(v["lead_data"]["urgence"], false, "a JSON boolean");
    assert_eq!(v["lead_data"]["status"], "qualifie");
    assert_eq!(v["lead_data"]["language"], "en");
}

#[tokio::test]
async fn three_failures_then_an_example_then_a_callback_and_abandonne() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+14185550142"));
    say(&store, id, "Luc Ouellet");

    let first = say(&store, id, "euh attendez");
    assert_step(&first, "validation_error", Some(2), None, false);
    assert_eq!(
        first["message"],
        "Pouvez-vous me redire le numéro, chiffre par chiffre?"
    );
    let second = say(&store, id, "cinq un quatre un deux trois");
    assert_step(&second, "validation_error", Some(2), None, false);
    assert_eq!(
        second["message"],
        "J'ai compris 5 1 4, 1 2 3, mais ce numéro ne semble pas valide. Pouvez-vous me redire \
         le numéro, chiffre par chiffre?"
    );
    let third = say(&store, id, "je sais pas");
    assert_step(&third, "validation_error", Some(2), None, false);
    assert!(
        third["message"]
            .as_str()
            .unwrap()
            .starts_with("Dites le numéro chiffre par chiffre, par exemple")
    );
    let fourth = say(&store, id, "hmm");
    assert_step(&fourth, "validation_error", None, None, false);
    assert_eq!(
        fourth["message"],
        "Je suis désolée, je n'arrive pas à bien vous comprendre. Un membre de l'équipe vous \
         rappellera au 4 1 8, 5 5 5, 0 1 4 2 pour compléter votre demande. Merci de votre appel et \
         bonne journée!"
    );
    assert_eq!(fourth["lead_data"]["status"], "abandonne");
    assert_eq!(fourth["lead_data"]["nom_complet"], "Luc Ouellet", "kept");

    let lead = store.get(id).unwrap();
    let rejected: Vec<&str> = lead
        .conversation
        .iter()
        .filter(|t| t.accepted == Some(false))
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        rejected,
        [
            "euh attendez",
            "cinq un quatre un deux trois",
            "je sais pas",
            "hmm"
        ],
        "every raw answer is kept, rejected ones included"
    );
    let after = say(&store, id, "514 555 1234");
    assert_step(&after, "validation_error", None, None, false);
    assert_eq!(
        store.get(id).unwrap().telephone,
        None,
        "abandoned leads stay closed"
    );
}

#[tokio::test]
async fn an_accepted_answer_resets_the_failure_count() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    for _ in 0..2 {
        say(&store, id, "1234");
    }
    say(&store, id, "Émilie Roy");
    // The phone gets its own fresh three attempts.
    for expected in ["validation_error", "validation_error", "validation_error"] {
        let v = say(&store, id, "non");
        assert_eq!(v["status"], expected);
        assert_eq!(v["next_step"], 2);
    }
}

#[tokio::test]
async fn declining_the_caller_id_asks_for_the_number_without_a_failure() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+15145550199"));
    say(&store, id, "Sylvie Bélanger");
    let v = say(&store, id, "non c'est pas le bon");
    assert_step(&v, "continue", Some(2), None, false);
    assert_eq!(
        v["message"],
        "D'accord. À quel numéro de téléphone peut-on vous rappeler?"
    );
    assert!(store.get(id).unwrap().attempts.is_empty());
    let v = say(
        &store,
        id,
        "quatre cinq zéro, deux deux deux, trente-trois trente-trois",
    );
    assert_step(&v, "continue", Some(3), Some("telephone"), false);
    assert_eq!(v["lead_data"]["telephone"], "+14502223333");
}

#[tokio::test]
async fn corrections_update_the_earlier_field() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    say(&store, id, "Jean Tremblay");
    say(&store, id, "514 555 1234");

    let v = say(&store, id, "non, mon nom c'est Jean-Guy Tremblay");
    assert_step(&v, "continue", Some(3), Some("nom_complet"), false);
    assert_eq!(v["lead_data"]["nom_complet"], "Jean-Guy Tremblay");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("C'est corrigé, merci. Quelle est l'adresse")
    );

    let v = say(&store, id, "actually my number is 438 555 9876");
    assert_step(&v, "continue", Some(3), Some("telephone"), false);
    assert_eq!(v["lead_data"]["telephone"], "+14385559876");
    assert_eq!(v["lead_data"]["language"], "en", "answered in English");

    let v = say(&store, id, "non mon numéro c'est le 12");
    assert_step(&v, "validation_error", Some(3), None, false);
    assert_eq!(v["lead_data"]["telephone"], "+14385559876", "unchanged");
    assert!(
        store.get(id).unwrap().attempts.is_empty(),
        "not a failure of the address"
    );
}

#[tokio::test]
async fn asking_for_english_switches_and_stays() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    let v = say(&store, id, "English please");
    assert_step(&v, "continue", Some(1), None, false);
    assert_eq!(
        v["message"],
        "Of course, let's continue in English. I'm Myriam, BP Émondage's virtual assistant; this call may be recorded to handle your request. To begin, what is your full name?"
    );
    let v = say(&store, id, "Gaétan Lévesque");
    assert_eq!(v["lead_data"]["language"], "en", "stays in English");
    assert_eq!(
        v["message"],
        "Thank you, Gaétan. What phone number can we call you back at?"
    );

    let other = MemoryLeadStore::default();
    let id = new_lead(&other, None);
    let v = say(&other, id, "in English please, my name is Peter Jones");
    assert_step(&v, "continue", Some(2), Some("nom_complet"), false);
    assert_eq!(v["lead_data"]["nom_complet"], "Peter Jones");
}

#[tokio::test]
async fn the_vapi_history_can_switch_the_language() {
    let mut lead = Lead::new(LeadId::new());
    let history = [
        HistoryMessage {
            role: "user".into(),
            content: "hi there I need my tree cut".into(),
        },
        HistoryMessage {
            role: "user".into(),
            content: "yes my name is Anne".into(),
        },
    ];
    let outcome = machine::process_response(&mut lead, "Anne Martin", &history);
    assert_eq!(lead.language, Language::En);
    assert_eq!(outcome.field_updated, Some(Field::NomComplet));
}

#[test]
fn adversarial_repetitions_are_handled() {
    for unit in [
        "c'est ",
        "euh ",
        "merci ",
        "pas urgent oui ",
        "cinq cent ",
        "h2x1y4 ",
        "non mon nom c'est ",
    ] {
        let input = unit.repeat(10_240 / unit.len());
        let mut lead = Lead::new(LeadId::new());
        for _ in 0..7 {
            let outcome = machine::process_response(&mut lead, &input, &[]);
            assert!(!outcome.message.is_empty());
        }
    }
}

fn e164_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && s.starts_with("+1")
        && (b'2'..=b'9').contains(&b[2])
        && (b'2'..=b'9').contains(&b[5])
        && b[2..].iter().all(u8::is_ascii_digit)
}

fn number_words() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "zéro", "dix",
        "onze", "douze", "vingt", "trente", "soixante", "cent", "et", "one", "two", "oh", "double",
        "twelve", "ninety", "hundred", ",", "-", "5", "14", "555", "euh",
    ]);
    prop::collection::vec(words, 0..40).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_input_panics_any_parser(input in "\\PC{0,400}") {
        let _ = myriam::qualification::PersonName::try_from(input.as_str());
        let _ = myriam::qualification::Address::try_from(input.as_str());
        let _ = myriam::qualification::ServiceType::try_from(input.as_str());
        let _ = myriam::qualification::Description::try_from(input.as_str());
        let _ = myriam::qualification::Urgency::try_from(input.as_str());
        if let Ok(phone) = PhoneNumber::try_from(input.as_str()) {
            prop_assert!(e164_shape(phone.as_e164()), "{}", phone);
        }
    }

    #[test]
    fn spoken_numbers_give_valid_e164_or_a_rejection(input in number_words()) {
        if let Ok(phone) = PhoneNumber::try_from(input.as_str()) {
            prop_assert!(e164_shape(phone.as_e164()), "{input} gave {phone}");
        }
    }

    #[test]
    fn every_field_survives_random_answers(answers in prop::collection::vec("\\PC{0,80}", 1..12)) {
        let mut lead = Lead::new(LeadId::new())
            .with_offered_phone(Some(PhoneNumber::try_from("514 555 0199").unwrap()));
        for answer in &answers {
            let outcome = machine::process_response(&mut lead, answer, &[]);
            let json = serde_json::to_value(&outcome).unwrap();
            prop_assert!(json["lead_data"]["urgence"].is_boolean());
            if let Some(step) = outcome.next_step {
                prop_assert!((1..=6).contains(&step));
            }
            prop_assert_eq!(outcome.is_complete, lead.status == LeadStatus::Qualifie);
        }
        prop_assert_eq!(lead.conversation.len(), answers.len() * 2);
    }
}

proptest! {
    // 10 KiB inputs are slow in debug builds; fewer cases, same property.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn long_inputs_do_not_panic(input in prop::collection::vec(any::<char>(), 0..10_240)) {
        let input: String = input.into_iter().collect();
        let mut lead = Lead::new(LeadId::new());
        for _ in 0..7 {
            let outcome = machine::process_response(&mut lead, &input, &[]);
            prop_assert!(!outcome.message.is_empty());
        }
        let _ = PhoneNumber::try_from(input.as_str());
    }
}

/// Ways of asking for a person, French and English.
const PERSON_REQUESTS: &[&str] = &[
    "je veux parler à quelqu'un",
    "je veux parler à un humain",
    "une vraie personne",
    "passez-moi un agent",
    "un représentant s'il vous plaît",
    "je voudrais parler au bureau",
    "I want to talk to someone",
    "can I speak with a real person",
    "operator",
    "a human please",
];

/// The answers that bring a lead to each step.
const TO_STEP: &[&str] = &[
    "Marie Tremblay",
    "oui",
    "123 rue Principale Laval",
    "abattage",
    "un gros érable penche vers la maison",
];

/// ASR-style noise: hesitations, case, punctuation, a leading « non ».
fn noisy(request: &str, noise: u8) -> String {
    let mut text = match noise % 4 {
        0 => format!("euh {request}"),
        1 => format!("non, {request}!"),
        2 => request.to_uppercase(),
        _ => format!("hum... {request}, euh"),
    };
    if noise & 4 != 0 {
        text = text.replace('\'', "’");
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A request for a person is an intent at every step: nothing is stored as a name, a phone
    /// number, an address or anything else, and what was collected stays.
    #[test]
    fn a_request_for_a_person_is_never_a_field_value(
        step in 0usize..6,
        request in prop::sample::select(PERSON_REQUESTS),
        noise in any::<u8>(),
    ) {
        let mut lead = Lead::new(LeadId::new())
            .with_offered_phone(Some(PhoneNumber::try_from("514 555 0199").unwrap()));
        for answer in &TO_STEP[..step.min(TO_STEP.len())] {
            machine::process_response(&mut lead, answer, &[]);
        }
        let before = lead.clone();
        let said = noisy(request, noise);
        let outcome = machine::process_response(&mut lead, &said, &[]);
        prop_assert_eq!(outcome.status, myriam::qualification::OutcomeStatus::HumanRequested, "{}", said);
        prop_assert_eq!(&lead.nom_complet, &before.nom_complet);
        prop_assert_eq!(&lead.telephone, &before.telephone);
        prop_assert_eq!(&lead.telephone_raw, &before.telephone_raw);
        prop_assert_eq!(&lead.adresse_complete, &before.adresse_complete);
        prop_assert_eq!(lead.type_service, before.type_service);
        prop_assert_eq!(&lead.description, &before.description);
        prop_assert_eq!(lead.urgence, before.urgence);
        prop_assert_eq!(&lead.attempts, &before.attempts);
        // The parsers refuse it too.
        prop_assert!(myriam::qualification::PersonName::try_from(said.as_str()).is_err(), "{}", said);
        prop_assert!(myriam::qualification::Address::try_from(said.as_str()).is_err(), "{}", said);
        prop_assert!(PhoneNumber::try_from(said.as_str()).is_err(), "{}", said);
    }
}

/// A value for each field, as a caller would say it after « c'est ».
const FIELD_VALUES: &[(Field, &str)] = &[
    (Field::NomComplet, "Julie Tremblay"),
    (Field::NomComplet, "Jean-Guy Côté"),
    (Field::Telephone, "514 555 0123"),
    (
        Field::Telephone,
        "quatre un huit, cinq cinq cinq, zéro un quatre deux",
    ),
    (Field::AdresseComplete, "520 rue Principale"),
    (Field::AdresseComplete, "12 chemin du Lac, Magog"),
    (Field::TypeService, "de l'élagage"),
    (Field::TypeService, "de l'essouchement"),
    (Field::Description, "un gros érable penche vers la maison"),
    (Field::Description, "le vieux chêne perd son écorce"),
    (Field::Urgence, "urgent"),
    (Field::Urgence, "pas pressé"),
];

/// Ways of announcing a correction, French and English.
const CORRECTION_LEADS: &[&str] = &[
    "non attendez, c'est",
    "attendez, en fait c'est",
    "non, plutôt",
    "en fait c'est",
    "non pardon, c'est",
    "actually it's",
    "sorry, I mean",
    "non c'est",
    "euh non, finalement c'est",
];

/// The lead's six fields, as compared by the property tests.
fn fields_of(lead: &Lead) -> [Option<String>; 6] {
    let data = lead.data();
    [
        data.nom_complet,
        data.telephone,
        data.adresse_complete,
        data.type_service.map(str::to_owned),
        data.description,
        lead.urgence.map(|u| u.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// « non attendez, c'est {a value of some field} » at any step, the read-back included, changes
    /// that field or nothing: never another one.
    #[test]
    fn a_correction_never_lands_in_another_field(
        step in 0usize..6,
        value in prop::sample::select(FIELD_VALUES),
        lead_in in prop::sample::select(CORRECTION_LEADS),
        offered in any::<bool>(),
    ) {
        let (target, value) = value;
        let mut lead = Lead::new(LeadId::new()).with_offered_phone(
            offered.then(|| PhoneNumber::try_from("514 555 0199").unwrap()),
        );
        let to_step: [&str; 5] = [
            "Marie Tremblay",
            if offered { "oui" } else { "450 555 0100" },
            "123 rue Principale Laval",
            "abattage",
            "une épinette sèche dans la cour",
        ];
        for answer in &to_step[..step.min(to_step.len())] {
            machine::process_response(&mut lead, answer, &[]);
        }
        let before = fields_of(&lead);
        let said = format!("{lead_in} {value}");
        machine::process_response(&mut lead, &said, &[]);
        let after = fields_of(&lead);
        for (i, field) in Field::ALL.iter().enumerate() {
            if *field != target {
                prop_assert_eq!(
                    &after[i], &before[i],
                    "{:?} changed by {:?} at step {} ({:?})", field, said, step + 1, target
                );
            }
        }
    }

    /// Whatever is said at the name question (or the family-name question), what is stored as the
    /// name never holds a street address or a service word.
    #[test]
    fn no_address_or_service_word_is_ever_a_name(
        name in prop::sample::select(vec!["", "Julie", "Julie Tremblay", "c'est Marc", "Tremblay,"]),
        thing in prop::sample::select(vec![
            "élagage", "abattage", "essouchement", "une souche", "la haie", "un arbre tombé",
            "arbre", "branche", "tempête", "stump", "hedge", "tree removal", "45 rue King",
            "520 rue Principale Sherbrooke", "12 chemin du Lac", "1250 rang Saint-Joseph",
            "55 Maple Street", "cinq cent vingt rue Principale", "émondage", "pruning",
        ]),
        before_name in any::<bool>(),
        first_name_first in any::<bool>(),
    ) {
        let mut lead = Lead::new(LeadId::new());
        if first_name_first {
            machine::process_response(&mut lead, "Julie", &[]);
        }
        let said = if before_name { format!("{thing} {name}") } else { format!("{name} {thing}") };
        machine::process_response(&mut lead, &said, &[]);
        if let Some(stored) = &lead.nom_complet {
            prop_assert!(!myriam::qualification::listen::has_service_word(stored.as_str()), "{} from {:?}", stored, said);
            prop_assert!(!myriam::qualification::listen::has_street_address(stored.as_str()), "{} from {:?}", stored, said);
            prop_assert!(!stored.as_str().chars().any(|c| c.is_ascii_digit()), "{} from {:?}", stored, said);
            let folded = myriam::text::fold(stored.as_str());
            for word in ["cinq", "cent", "vingt", "rue", "chemin", "rang", "street"] {
                prop_assert!(!folded.split(' ').any(|w| w == word), "{} from {:?}", stored, said);
            }
        }
    }
}

#[test]
fn the_story_in_the_first_breath_is_kept_and_only_what_is_missing_is_asked() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+18195550401"));
    let v = say(
        &store,
        id,
        "Bonjour c'est Julie Tremblay, j'ai un arbre tombé sur ma maison au 45 rue King Ouest à \
         Sherbrooke",
    );
    assert_step(&v, "continue", Some(2), Some("nom_complet"), false);
    assert_eq!(v["lead_data"]["nom_complet"], "Julie Tremblay");
    assert_eq!(
        v["lead_data"]["adresse_complete"],
        "45 rue King Ouest à Sherbrooke"
    );
    assert_eq!(v["lead_data"]["type_service"], "urgence_tempete");
    assert_eq!(
        v["lead_data"]["description"],
        "j'ai un arbre tombé sur ma maison"
    );
    assert_eq!(
        v["message"],
        "Merci, Julie. Est-ce qu'on peut vous rappeler au 8 1 9, 5 5 5, 0 4 0 1?"
    );
    let v = say(&store, id, "oui");
    assert_step(&v, "continue", Some(6), Some("telephone"), false);
    assert_eq!(
        v["message"],
        "Parfait. J'ai noté : 45 rue King Ouest à Sherbrooke, et on vous rappelle au 8 1 9, 5 5 5, \
         0 4 0 1. Est-ce exact?"
    );
    let v = say(&store, id, "oui c'est ça");
    assert_step(&v, "continue", Some(6), None, false);
    assert_eq!(v["message"], "Parfait. Est-ce que c'est urgent?");
    let v = say(&store, id, "oui");
    assert_step(&v, "complete", None, Some("urgence"), true);
}

#[test]
fn an_address_corrected_at_the_service_question_is_acknowledged_and_the_question_asked_again() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+14185550503"));
    for answer in [
        "Paul Bergeron",
        "oui",
        "250 rue Principale, Saint-Raymond",
        "oui",
    ] {
        say(&store, id, answer);
    }
    let v = say(
        &store,
        id,
        "Non attendez, c'est 520 rue Principale, pas 250",
    );
    assert_step(&v, "continue", Some(4), Some("adresse_complete"), false);
    assert_eq!(v["lead_data"]["adresse_complete"], "520 rue Principale");
    assert_eq!(v["lead_data"]["type_service"], Value::Null, "not `autre`");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("C'est corrigé, merci. De quel service avez-vous besoin?")
    );
    // Unmatched: asked again first, not `autre`.
    let v = say(&store, id, "ben c'est pour mon terrain");
    assert_step(&v, "validation_error", Some(4), None, false);
    let v = say(&store, id, "abattage");
    assert_eq!(v["lead_data"]["type_service"], "abattage");
}

#[test]
fn a_first_name_alone_is_completed_and_family_name_first_is_turned_around() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    let v = say(&store, id, "Martin");
    assert_step(&v, "continue", Some(1), None, false);
    assert_eq!(v["message"], "Merci, Martin. Et votre nom de famille?");
    let v = say(&store, id, "Dubé");
    assert_step(&v, "continue", Some(2), Some("nom_complet"), false);
    assert_eq!(v["lead_data"]["nom_complet"], "Martin Dubé");

    let id = new_lead(&store, None);
    let v = say(&store, id, "Tremblay, Julie");
    assert_eq!(v["lead_data"]["nom_complet"], "Julie Tremblay");
    assert!(v["message"].as_str().unwrap().starts_with("Merci, Julie."));

    let id = new_lead(&store, None);
    let v = say(&store, id, "my name is John");
    assert_eq!(v["message"], "Thank you, John. And your last name?");
    let v = say(&store, id, "Smith");
    assert_eq!(v["lead_data"]["nom_complet"], "John Smith");
}

#[test]
fn the_read_back_can_be_corrected_twice_then_it_is_kept_and_marked_disputed() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    for answer in ["my name is Peter Jones", "514 555 0203"] {
        say(&store, id, answer);
    }
    let v = say(&store, id, "60 Pine Avenue, Montreal");
    assert_eq!(
        v["message"],
        "I have 60 Pine Avenue, Montreal, and we'll call you back at 5 1 4, 5 5 5, 0 2 0 3. Is that \
         right?"
    );
    let v = say(&store, id, "no");
    assert_eq!(
        v["message"],
        "All right. What should I correct: the address or the number?"
    );
    let v = say(&store, id, "the address");
    assert_eq!(v["message"], "What is the right address?");
    let v = say(&store, id, "16 Pine Avenue, Montreal");
    assert_step(&v, "continue", Some(4), Some("adresse_complete"), false);
    assert!(v["message"].as_str().unwrap().contains("Is that right?"));
    let v = say(&store, id, "no, it's 61 Pine Avenue, Montreal");
    assert_eq!(
        v["lead_data"]["adresse_complete"],
        "61 Pine Avenue, Montreal"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("All right, I'll note it as is; someone from the team will check it")
    );
    let lead = store.get(id).unwrap();
    assert!(lead.disputed(), "staff see the dispute in the conversation");
}

#[test]
fn questions_get_a_short_answer_and_the_question_again() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, None);
    let v = say(&store, id, "vous êtes ouverts jusqu'à quelle heure?");
    assert_step(&v, "continue", Some(1), None, false);
    assert_eq!(v["lead_data"]["nom_complet"], Value::Null);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with("quel est votre nom complet?")
    );
    for answer in [
        "Roger Bédard",
        "514 555 0801",
        "400 rue Sherbrooke Est, Montréal",
        "oui",
    ] {
        say(&store, id, answer);
    }
    let v = say(&store, id, "combien ça coûte pour couper un arbre?");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Un estimateur vous donnera un prix lors d'une visite gratuite.")
    );
    let v = say(&store, id, "est-ce que vous faites du déneigement?");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("pas de déneigement")
    );
}

#[test]
fn a_name_alone_fills_nothing_else_and_a_no_at_the_read_back_asks_what_to_fix() {
    let store = MemoryLeadStore::default();
    let id = new_lead(&store, Some("+15145550199"));
    // « Plante » starts like « planter »: still only a name.
    let v = say(&store, id, "Marie Plante");
    assert_eq!(v["lead_data"]["nom_complet"], "Marie Plante");
    assert_eq!(v["lead_data"]["type_service"], Value::Null);
    say(&store, id, "oui");
    let v = say(&store, id, "H2X 1Y4");
    assert!(v["message"].as_str().unwrap().ends_with("Est-ce exact?"));
    let v = say(&store, id, "non, pas le bon numéro");
    assert_eq!(v["message"], "Quel est le bon numéro?");
    let v = say(&store, id, "514 555 0200");
    assert_eq!(v["lead_data"]["telephone"], "+15145550200");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("C'est corrigé, merci. J'ai noté : H2X 1Y4")
    );
    let v = say(&store, id, "oui");
    assert_step(&v, "continue", Some(4), None, false);
    assert!(!store.get(id).unwrap().disputed());
}
