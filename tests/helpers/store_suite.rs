//! The store suite: the same behaviour asked of every `Store` (SQLite, Supabase through real
//! PostgREST, the outbox, and the hosted Supabase project in `tests/live_supabase.rs`). It expects an
//! empty store.

use std::collections::BTreeMap;
use std::time::Duration;

use myriam::domain::{CallSid, ConversationMode, Language, LeadId, LeadStatus, PhoneNumber};
use myriam::qualification::{Address, Description, Field, Lead, PersonName, ServiceType, Turn};
use myriam::store::{
    AlertEvent, AlertOutcome, AlertStatus, Alerts, CallUpdate, NewAlert, Saved, Store,
};

pub fn sid(n: u32) -> CallSid {
    CallSid::try_from(format!("CA{n:032x}").as_str()).unwrap()
}

/// A lead with every column set, accents, emoji, SQL metacharacters and a 10 KB description.
pub fn full_lead() -> Lead {
    let mut lead = Lead::new(LeadId::new());
    lead.nom_complet = Some(PersonName::try_from("Marie-Ève Côté-Lévesque").unwrap());
    lead.telephone = Some(PhoneNumber::try_from("514 555 0199").unwrap());
    lead.telephone_raw = Some("cinq un quatre… « oui » 🌲".to_owned());
    lead.adresse_complete =
        Some(Address::try_from("4567 boulevard Saint-Laurent, Montréal H2X 1Y4").unwrap());
    lead.type_service = Some(ServiceType::UrgenceTempete);
    let description = format!(
        "L'érable est tombé'; DROP TABLE bp.leads; -- \"quoted\" \\ %_ 🌳 {}",
        "branche ".repeat(1_250)
    );
    lead.description = Some(Description::try_from(description.as_str()).unwrap());
    lead.urgence = Some(true);
    lead.status = LeadStatus::Qualifie;
    lead.language = Language::En;
    lead.offered_phone = Some(PhoneNumber::try_from("+14185550142").unwrap());
    lead.attempts = BTreeMap::from([(Field::Telephone, 2)]);
    lead.conversation = vec![
        Turn::caller(
            Some(Field::NomComplet),
            "je m'appelle Marie-Ève 😀".to_owned(),
            true,
        ),
        Turn {
            tool_call_id: Some("call_abc".to_owned()),
            ..Turn::myriam(Some(Field::Telephone), "Merci.".to_owned())
        },
    ];
    lead
}

/// Without what the store sets: the times and the version.
pub fn without_times(mut lead: Lead) -> Lead {
    lead.created_at = None;
    lead.updated_at = None;
    lead.version = 0;
    lead
}

/// Saves a lead the store does not hold yet (version 0), or asserts why not.
pub async fn insert(store: &impl Store, lead: &Lead) {
    assert_eq!(store.save_lead(lead).await.unwrap(), Saved::Applied);
}

pub async fn suite(store: &impl Store) {
    store.health().await.expect("healthy");

    // Round trip of every column.
    let lead = full_lead();
    assert_eq!(store.get_lead(lead.id).await.unwrap(), None);
    insert(store, &lead).await;
    let back = store.get_lead(lead.id).await.unwrap().expect("stored");
    assert_eq!(back.version, 1, "a new lead is at version 1");
    let created = back.created_at.expect("created_at set by the store");
    assert_eq!(created.offset(), time::UtcOffset::UTC);
    assert!(back.updated_at.unwrap() >= created);
    assert_eq!(without_times(back), lead);
    assert_eq!(
        store
            .get_lead(lead.id)
            .await
            .unwrap()
            .unwrap()
            .description
            .unwrap()
            .as_str()
            .len(),
        lead.description.as_ref().unwrap().as_str().len()
    );

    // An open lead keeps urgence unanswered; a save over the version read replaces it.
    let mut open = Lead::new(LeadId::new());
    open.nom_complet = Some(PersonName::try_from("Luc Ouellet").unwrap());
    insert(store, &open).await;
    assert_eq!(
        store.save_lead(&open).await.unwrap(),
        Saved::Stale,
        "a second insert of the same lead"
    );
    open.version = 1;
    open.status = LeadStatus::EnCours;
    open.telephone = Some(PhoneNumber::try_from("438 555 9876").unwrap());
    assert_eq!(store.save_lead(&open).await.unwrap(), Saved::Applied);
    let back = store.get_lead(open.id).await.unwrap().unwrap();
    assert_eq!(back.version, 2);
    assert_eq!(without_times(back.clone()), without_times(open.clone()));
    assert_eq!(back.urgence, None);

    conditional_saves(store, back, &lead).await;
    calls(store, lead.id).await;
    call_starts(store).await;
    events_and_pages(store).await;
}

/// Two writers read the same version: the first save wins, the second is stale and changes
/// nothing; statuses only move forward; abandoning is conditional on the lead being open.
async fn conditional_saves(store: &impl Store, open: Lead, qualified: &Lead) {
    let mut first = open.clone();
    let mut second = open.clone();
    first.adresse_complete = Some(Address::try_from("12 rue des Érables, Laval").unwrap());
    second.description = Some(Description::try_from("l'autre instance").unwrap());
    assert_eq!(store.save_lead(&first).await.unwrap(), Saved::Applied);
    assert_eq!(store.save_lead(&second).await.unwrap(), Saved::Stale);
    let back = store.get_lead(open.id).await.unwrap().unwrap();
    assert_eq!(back.version, open.version + 1);
    assert_eq!(back.description, None, "the stale save wrote nothing");
    assert_eq!(
        back.adresse_complete.as_ref().map(Address::as_str),
        Some("12 rue des Érables, Laval")
    );

    // Abandon only an open lead, in one statement; a final lead stays as it is.
    assert_eq!(
        store.abandon_lead(qualified.id).await.unwrap(),
        Some(LeadStatus::Qualifie)
    );
    assert_eq!(
        store.get_lead(qualified.id).await.unwrap().unwrap().version,
        1,
        "nothing written"
    );
    assert_eq!(
        store.abandon_lead(open.id).await.unwrap(),
        Some(LeadStatus::Abandonne)
    );
    let abandoned = store.get_lead(open.id).await.unwrap().unwrap();
    assert_eq!(abandoned.status, LeadStatus::Abandonne);
    assert_eq!(abandoned.version, back.version + 1);
    assert_eq!(abandoned.adresse_complete, back.adresse_complete, "kept");
    assert_eq!(store.abandon_lead(LeadId::new()).await.unwrap(), None);

    // Backwards is refused by the store itself, even over the right version.
    // (The outbox acknowledges it as a dead letter; the others answer an error.)
    let mut backwards = abandoned.clone();
    backwards.status = LeadStatus::EnCours;
    let _refused = store.save_lead(&backwards).await;
    assert_eq!(
        store.get_lead(open.id).await.unwrap().unwrap().status,
        LeadStatus::Abandonne
    );
}

/// A call's lead is insert-or-get by CallSid: a second start (a retry on another instance) gets
/// the first lead and stores nothing; a call's status never moves backwards and its lead is
/// never re-pointed.
async fn call_starts(store: &impl Store) {
    let call = sid(77);
    let mut update = CallUpdate::new(call.clone());
    update.from_number = Some("+15145550199".to_owned());
    update.status = Some("ringing".to_owned());
    update.mode = Some(ConversationMode::Ivr);
    let first = Lead::new(LeadId::new());
    let second = Lead::new(LeadId::new());
    let started = store.start_call(&first, &update).await.unwrap();
    assert_eq!((started.id, started.version), (first.id, 1));
    let again = store.start_call(&second, &update).await.unwrap();
    assert_eq!(again.id, first.id, "the same lead for the same call");
    assert_eq!(store.get_lead(second.id).await.unwrap(), None, "no orphan");
    assert_eq!(
        store.find_lead_by_call(&call).await.unwrap().unwrap().id,
        first.id
    );
    let record = store.get_call(&call).await.unwrap().unwrap();
    assert_eq!(record.fields.lead_id, Some(first.id));
    assert_eq!(record.fields.from_number.as_deref(), Some("+15145550199"));
    assert_eq!(record.fields.mode, Some(ConversationMode::Ivr));

    // A call whose row came first (a status callback) gets its lead on start.
    let early = sid(78);
    let mut callback = CallUpdate::new(early.clone());
    callback.status = Some("in-progress".to_owned());
    store.upsert_call(&callback).await.unwrap();
    let third = Lead::new(LeadId::new());
    assert_eq!(
        store
            .start_call(&third, &update_for(&early))
            .await
            .unwrap()
            .id,
        third.id
    );
    let record = store.get_call(&early).await.unwrap().unwrap();
    assert_eq!(record.fields.lead_id, Some(third.id));
    assert_eq!(record.fields.status.as_deref(), Some("in-progress"));

    // Forward only, whoever writes: completed then a late ringing stays completed; the lead
    // stays the first one.
    let mut done = CallUpdate::new(call.clone());
    done.status = Some("completed".to_owned());
    store.upsert_call(&done).await.unwrap();
    let mut late = CallUpdate::new(call.clone());
    late.status = Some("ringing".to_owned());
    late.lead_id = Some(second.id);
    late.duration = Some(12);
    let _ = store.upsert_call(&late).await;
    let record = store.get_call(&call).await.unwrap().unwrap();
    assert_eq!(record.fields.status.as_deref(), Some("completed"));
    assert_eq!(record.fields.lead_id, Some(first.id));
}

fn update_for(call: &CallSid) -> CallUpdate {
    let mut update = CallUpdate::new(call.clone());
    update.from_number = Some("+14385550100".to_owned());
    update.mode = Some(ConversationMode::Ivr);
    update
}

async fn calls(store: &impl Store, lead_id: LeadId) {
    // The same upsert three times is one row, last values win; partial updates keep the rest.
    let call = sid(1);
    for (status, duration) in [("ringing", 0), ("in-progress", 5), ("completed", 42)] {
        let mut update = CallUpdate::new(call.clone());
        update.lead_id = Some(lead_id);
        update.from_number = Some("+15145550199".to_owned());
        update.to_number = Some("+14505550100".to_owned());
        update.direction = Some("inbound".to_owned());
        update.status = Some(status.to_owned());
        update.duration = Some(duration);
        store.upsert_call(&update).await.unwrap();
    }
    let mut partial = CallUpdate::new(call.clone());
    partial.mode = Some(ConversationMode::Ivr);
    partial.mode_reason = Some("vapi_unavailable".to_owned());
    partial.recording_url = Some("https://api.twilio.com/rec/RE1".to_owned());
    partial.transcript = Some("Myriam: Bonjour… 🌲".to_owned());
    partial.ended_reason = Some("customer-ended-call".to_owned());
    partial.vapi_call_id = Some("vapi-call-1".to_owned());
    partial.vapi_recording_url = Some("https://storage.vapi.ai/call-1.wav".to_owned());
    partial.vapi_summary = Some("L'appelante veut faire abattre un érable.".to_owned());
    partial.vapi_structured_data = Some(serde_json::json!({
        "service": "abattage", "urgent": true, "arbres": 2, "détails": {"accès": null}
    }));
    partial.vapi_turns = Some(vec![
        myriam::store::VapiTurn {
            speaker: "assistant".to_owned(),
            text: "Bonjour, vous parlez à Myriam.".to_owned(),
            at_ms: Some(0),
        },
        myriam::store::VapiTurn {
            speaker: "caller".to_owned(),
            text: "Allo, c'est Julie 🌲".to_owned(),
            at_ms: None,
        },
    ]);
    store.upsert_call(&partial).await.unwrap();
    let record = store.get_call(&call).await.unwrap().expect("call stored");
    assert_eq!(
        record.fields.recording_url.as_deref(),
        Some("https://api.twilio.com/rec/RE1")
    );
    assert_eq!(record.fields.vapi_recording_url, partial.vapi_recording_url);
    assert_eq!(record.fields.vapi_summary, partial.vapi_summary);
    assert_eq!(
        record.fields.vapi_structured_data,
        partial.vapi_structured_data
    );
    assert_eq!(record.fields.vapi_turns, partial.vapi_turns);
    assert_eq!(record.fields.status.as_deref(), Some("completed"));
    assert_eq!(record.fields.duration, Some(42));
    assert_eq!(
        record.fields.from_number.as_deref(),
        Some("+15145550199"),
        "kept"
    );
    assert_eq!(record.fields.mode, Some(ConversationMode::Ivr));
    assert_eq!(
        record.fields.transcript.as_deref(),
        Some("Myriam: Bonjour… 🌲")
    );
    assert_eq!(record.fields.lead_id, Some(lead_id));
    assert!(record.created_at.is_some() && record.id.is_some());
    let calls = store.calls_of_lead(lead_id).await.unwrap();
    assert_eq!(calls.len(), 1, "three upserts of one call are one row");
    assert_eq!(calls[0].fields, record.fields);
    assert_eq!(store.get_call(&sid(999)).await.unwrap(), None);

    // Lookups.
    let by_vapi = store
        .find_call_by_vapi_id("vapi-call-1")
        .await
        .unwrap()
        .expect("found by Vapi call id");
    assert_eq!(by_vapi.fields.call_sid, call);
    assert_eq!(store.find_call_by_vapi_id("vapi-nope").await.unwrap(), None);
    let found = store
        .find_lead_by_call(&call)
        .await
        .unwrap()
        .expect("lead of call");
    assert_eq!(found.id, lead_id);
    assert_eq!(store.find_lead_by_call(&sid(998)).await.unwrap(), None);
}

async fn events_and_pages(store: &impl Store) {
    // Idempotency keys.
    assert!(
        store
            .record_event("twilio:CA1:status:completed")
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_event("twilio:CA1:status:completed")
            .await
            .unwrap()
    );
    assert!(
        store
            .event_processed("twilio:CA1:status:completed")
            .await
            .unwrap()
    );
    assert!(
        !store
            .event_processed("twilio:CA1:status:busy")
            .await
            .unwrap()
    );

    // Pagination, newest first.
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut l = Lead::new(LeadId::new());
        l.description = Some(Description::try_from(format!("page lead {i}").as_str()).unwrap());
        insert(store, &l).await;
        ids.push(l.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let page1: Vec<LeadId> = store
        .list_leads(2, 0)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    let page2: Vec<LeadId> = store
        .list_leads(2, 2)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(page1, [ids[4], ids[3]]);
    assert_eq!(page2, [ids[2], ids[1]]);
    let all = store.list_leads(100, 0).await.unwrap();
    assert_eq!(all.len(), 9);
    assert!(store.list_leads(0, 0).await.unwrap().is_empty());
}

/// The SMS alert rows every store keeps the same way: created once with the lead write, claimed
/// exclusively under a lease, finished once, delivery statuses forward only.
pub async fn alerts_suite(store: &(impl Store + Alerts)) {
    let lead = full_lead();
    let to = ["+15145550101", "+14385550102"];
    let first: Vec<NewAlert> = to
        .iter()
        .map(|r| NewAlert::new(lead.id, AlertEvent::Qualified, r))
        .collect();
    assert_eq!(
        store.save_lead_with_alerts(&lead, &first).await.unwrap(),
        Saved::Applied
    );
    assert_eq!(
        store.get_lead(lead.id).await.unwrap().map(without_times),
        Some(lead.clone())
    );
    let stored = store.alerts_of_lead(lead.id).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|a| a.status == AlertStatus::Pending && a.attempts == 0)
    );
    assert_eq!(store.alert_backlog().await.unwrap().0, 2);

    // The same write again (a replay, another instance): the alerts exist already.
    let again: Vec<NewAlert> = to
        .iter()
        .map(|r| NewAlert::new(lead.id, AlertEvent::Qualified, r))
        .collect();
    let lead = save_again_with_alerts(store, lead, &again).await;
    let ids: Vec<_> = store
        .alerts_of_lead(lead.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, stored.iter().map(|a| a.id).collect::<Vec<_>>());

    // Claims are exclusive while the lease runs.
    let claimed = store
        .claim_due_alerts(Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|a| a.status == AlertStatus::Claimed && a.attempts == 1)
    );
    assert!(
        store
            .claim_due_alerts(Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Sent once: a second finish finds it no longer claimed.
    let (a, b) = (claimed[0].id, claimed[1].id);
    let sent = AlertOutcome::Sent {
        message_sid: "SM0123456789abcdef0123456789abcdef".to_owned(),
        status: "queued".to_owned(),
    };
    assert!(store.finish_alert(a, &sent).await.unwrap());
    assert!(!store.finish_alert(a, &sent).await.unwrap());

    // A retry is due again at once here; then refused for good.
    let retry = AlertOutcome::Retry {
        after: Duration::ZERO,
        error: "HTTP 429".to_owned(),
    };
    assert!(store.finish_alert(b, &retry).await.unwrap());
    let reclaimed = store
        .claim_due_alerts(Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!((reclaimed[0].id, reclaimed[0].attempts), (b, 2));
    assert_eq!(reclaimed[0].last_error.as_deref(), Some("HTTP 429"));
    let dead = AlertOutcome::Dead {
        code: Some(21211),
        error: "invalid To".to_owned(),
    };
    assert!(store.finish_alert(b, &dead).await.unwrap());

    // Delivery statuses move forward only; unknown messages change nothing.
    let sid = "SM0123456789abcdef0123456789abcdef";
    assert!(store.record_delivery(sid, "sent", None).await.unwrap());
    assert!(store.record_delivery(sid, "delivered", None).await.unwrap());
    assert!(!store.record_delivery(sid, "sent", None).await.unwrap());
    assert!(
        !store
            .record_delivery("SM9999999999abcdef0123456789abcdef", "delivered", None)
            .await
            .unwrap()
    );
    let done = store.alerts_of_lead(lead.id).await.unwrap();
    let by_id = |id| done.iter().find(|x| x.id == id).unwrap();
    assert_eq!(by_id(a).status, AlertStatus::Sent);
    assert_eq!(by_id(a).message_sid.as_deref(), Some(sid));
    assert_eq!(by_id(a).delivery_status.as_deref(), Some("delivered"));
    assert_eq!(by_id(b).status, AlertStatus::Dead);
    assert_eq!(by_id(b).error_code, Some(21211));
    assert_eq!(store.alert_backlog().await.unwrap().0, 0);
    claims_expire(store).await;
}

/// Saves the lead again over version 1 with `alerts`; then a stale save (over version 1 again)
/// writes neither the lead nor its alerts.
async fn save_again_with_alerts(
    store: &(impl Store + Alerts),
    mut lead: Lead,
    alerts: &[NewAlert],
) -> Lead {
    lead.version = 1;
    assert_eq!(
        store.save_lead_with_alerts(&lead, alerts).await.unwrap(),
        Saved::Applied
    );
    let stale = NewAlert::new(lead.id, AlertEvent::Voicemail, &alerts[0].recipient);
    assert_eq!(
        store.save_lead_with_alerts(&lead, &[stale]).await.unwrap(),
        Saved::Stale
    );
    lead
}

/// A claim whose instance died: the lease runs out and the alert is claimed again.
async fn claims_expire(store: &(impl Store + Alerts)) {
    let other = full_lead();
    let to = "+15145550101";
    store
        .save_lead_with_alerts(
            &other,
            &[NewAlert::new(other.id, AlertEvent::Voicemail, to)],
        )
        .await
        .unwrap();
    let held = store
        .claim_due_alerts(Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let taken = store
        .claim_due_alerts(Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].id, taken[0].attempts, taken[0].event),
        (held[0].id, 2, AlertEvent::Voicemail)
    );
}
