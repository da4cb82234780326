//! The dashboard's sums (`StatsStore`) against `SqliteStore`, `SupabaseStore` on a real PostgREST
//! (`bp.console_stats`) and `OutboxStore`: the same planted calls give the same numbers.
#![allow(clippy::too_many_lines, clippy::many_single_char_names)] // one story, leads A to F

mod helpers;

use std::time::Duration;

use helpers::store_suite::{full_lead, sid};
use helpers::supabase::SupabaseStack;
use myriam::domain::{ConversationMode, Language, LeadId, LeadStatus, PhoneNumber};
use myriam::qualification::{Address, Lead, PersonName};
use myriam::store::console::{ConsoleStore, FollowUp, FollowUpChange};
use myriam::store::outbox::{OutboxConfig, OutboxStore};
use myriam::store::sqlite::SqliteStore;
use myriam::store::stats::{AlertCount, Callbacks, DayCounts, StatsQuery, StatsStore, Transfers};
use myriam::store::supabase::SupabaseStore;
use myriam::store::{AlertEvent, Alerts, CallUpdate, NewAlert, Store};
use secrecy::SecretString;
use time::OffsetDateTime;

fn supabase(stack: &SupabaseStack) -> SupabaseStore {
    SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.service_key.clone()),
        "bp",
        Duration::from_secs(5),
    )
}

fn partial(status: LeadStatus, answered: usize, language: Language) -> Lead {
    let mut lead = Lead::new(LeadId::new());
    lead.language = language;
    if answered > 0 {
        lead.nom_complet = Some(PersonName::try_from("Jean Tremblay").unwrap());
    }
    if answered > 1 {
        lead.telephone = Some(PhoneNumber::try_from("514 555 0177").unwrap());
        lead.telephone_raw = Some("514 555 0177".to_owned());
    }
    if answered > 2 {
        lead.adresse_complete =
            Some(Address::try_from("12 rue Principale, Laval H7N 1A1").unwrap());
    }
    lead.status = status;
    lead
}

async fn call<S: Store>(store: &S, n: u32, lead: &Lead, set: impl FnOnce(&mut CallUpdate)) {
    let mut update = CallUpdate::new(sid(n));
    update.direction = Some("inbound".to_owned());
    update.from_number = Some("+15145550177".to_owned());
    set(&mut update);
    let mut fresh = lead.clone();
    fresh.version = 0;
    let stored = store.start_call(&fresh, &update).await.unwrap();
    store.upsert_call(&update).await.unwrap();
    let mut saved = lead.clone();
    saved.version = stored.version;
    saved.created_at = stored.created_at;
    if stored != saved {
        store.save_lead(&saved).await.unwrap();
    }
}

/// Plants five calls in the last minute and asks for the hour around now.
async fn suite<S: Store + ConsoleStore + Alerts + StatsStore>(store: &S) {
    // A: Vapi, qualified, urgent (English: `full_lead`), followed up at once, two SMS alerts.
    let a = full_lead();
    call(store, 1, &a, |c| c.mode = Some(ConversationMode::Bridge)).await;
    let alerts = [
        NewAlert::new(a.id, AlertEvent::Qualified, "+15145550101"),
        NewAlert::new(a.id, AlertEvent::Qualified, "+15145550102"),
    ];
    let a_now = store.get_lead(a.id).await.unwrap().unwrap();
    store.save_lead_with_alerts(&a_now, &alerts).await.unwrap();
    let changed = store
        .change_follow_up(a.id, 0, FollowUp::Contacte, None, "staff@bp.example")
        .await
        .unwrap();
    assert!(matches!(changed, FollowUpChange::Applied(_)), "{changed:?}");
    // B: IVR, French, hung up at the address.
    let b = partial(LeadStatus::Abandonne, 2, Language::Fr);
    call(store, 2, &b, |c| c.mode = Some(ConversationMode::Ivr)).await;
    // C: IVR, French, asked for a person at the service; the office was busy.
    let c = partial(LeadStatus::Transfere, 3, Language::Fr);
    call(store, 3, &c, |u| {
        u.mode = Some(ConversationMode::Ivr);
        u.dial_status = Some("busy".to_owned());
    })
    .await;
    // D: IVR, French, asked for a person at once: no answer, voicemail.
    let d = partial(LeadStatus::Rappel, 0, Language::Fr);
    call(store, 4, &d, |u| {
        u.mode = Some(ConversationMode::Ivr);
        u.dial_status = Some("no-answer".to_owned());
        u.recording_sid = Some(format!("RE{:032x}", 4));
    })
    .await;
    // I: IVR, French, gave a name, then asked for a person at the number: no answer, voicemail.
    // The caller ID is kept as the number to call back, but it was not an answer.
    let mut i = partial(LeadStatus::Rappel, 1, Language::Fr);
    i.telephone = Some(PhoneNumber::try_from("514 555 0188").unwrap());
    call(store, 9, &i, |u| {
        u.mode = Some(ConversationMode::Ivr);
        u.dial_status = Some("no-answer".to_owned());
        u.recording_sid = Some(format!("RE{:032x}", 9));
    })
    .await;
    // E: a callback made by staff: not a call received.
    let e = partial(LeadStatus::Nouveau, 0, Language::Fr);
    call(store, 5, &e, |u| {
        u.direction = Some("outbound-api".to_owned());
    })
    .await;
    // F: the answered transfer of an English caller with no lead field yet.
    let f = partial(LeadStatus::Transfere, 0, Language::En);
    call(store, 6, &f, |u| {
        u.mode = Some(ConversationMode::Ivr);
        u.dial_status = Some("answered".to_owned());
    })
    .await;

    // G, H: callbacks from the console on A's lead (issue 27 §2): counted as callbacks, neither
    // as calls received nor as transfers. G reached the lead; in H the operator pressed nothing.
    for (n, dial, ended) in [
        (7, Some("answered"), None),
        (8, None, Some("operator-timeout")),
    ] {
        let mut u = CallUpdate::new(sid(n));
        u.lead_id = Some(a.id);
        u.direction = Some("outbound-callback".to_owned());
        u.operator = Some("staff@bp.example".to_owned());
        u.status = Some("completed".to_owned());
        u.dial_status = dial.map(str::to_owned);
        u.ended_reason = ended.map(str::to_owned);
        store.upsert_call(&u).await.unwrap();
    }
    let minute_ago = OffsetDateTime::now_utc() - Duration::from_secs(60);
    assert_eq!(
        store
            .callbacks_since("staff@bp.example", minute_ago)
            .await
            .unwrap(),
        2,
        "the per-operator limit counts in the store"
    );
    assert_eq!(
        store
            .callbacks_since("other@bp.example", minute_ago)
            .await
            .unwrap(),
        0
    );

    let now = OffsetDateTime::now_utc();
    let hour = (
        now - Duration::from_secs(1800),
        now + Duration::from_secs(1800),
    );
    let query = StatsQuery {
        days: vec![(hour.0 - Duration::from_secs(3600), hour.0), hour],
        weeks: vec![(hour.0 - Duration::from_secs(3600), hour.1)],
        open: vec![],
        now,
    };
    let stats = store.stats(&query).await.unwrap();
    assert_eq!(stats.days.len(), 2);
    assert_eq!(
        stats.days[0],
        DayCounts::default(),
        "nothing the hour before"
    );
    let day = &stats.days[1];
    assert_eq!(
        (day.calls, day.bridge, day.ivr, day.transfer, day.voicemail),
        (6, 1, 5, 4, 2),
        "{day:?}"
    );
    assert_eq!((day.french, day.english, day.after_hours), (4, 2, 6));
    assert_eq!(
        (
            day.leads,
            day.qualifie,
            day.abandonne,
            day.transfere,
            day.rappel,
            day.nouveau,
            day.urgent
        ),
        (7, 1, 1, 2, 2, 1, 1),
        "{day:?}"
    );
    let answered: Vec<u64> = stats.funnel.iter().map(|s| s.answered).collect();
    assert_eq!(answered, [4, 3, 2, 1, 1, 1], "{:?}", stats.funnel);
    let name = &stats.funnel[0];
    assert_eq!((name.hung_up, name.asked_person, name.open), (0, 2, 1));
    assert_eq!(
        stats.funnel[1].asked_person, 1,
        "I asked at the number (the caller ID kept to call back is not an answer)"
    );
    assert_eq!(stats.funnel[2].hung_up, 1, "B hung up at the address");
    assert_eq!(stats.funnel[3].asked_person, 1, "C asked at the service");
    assert_eq!(
        stats.transfers,
        Transfers {
            answered: 1,
            busy: 1,
            no_answer: 2,
            other: 0
        }
    );
    assert_eq!(stats.follow_up.len(), 1);
    assert_eq!(stats.follow_up[0].followed_up, 1);
    assert!(
        stats.follow_up[0].median_seconds.is_some_and(|s| s < 60),
        "{:?}",
        stats.follow_up
    );
    assert_eq!(stats.overdue, 0, "nobody waited 24 hours yet");
    assert_eq!(
        stats.callbacks,
        Callbacks {
            placed: 2,
            connected: 1,
            not_confirmed: 1,
            ..Callbacks::default()
        }
    );
    assert_eq!(
        stats.alerts,
        vec![AlertCount {
            status: "pending".to_owned(),
            count: 2
        }]
    );

    // Open all hour: no call after hours. A day later: six leads still waiting (A was handled).
    let later = StatsQuery {
        open: vec![hour],
        now: now + Duration::from_secs(25 * 3600),
        ..query.clone()
    };
    let stats = store.stats(&later).await.unwrap();
    assert_eq!(stats.days[1].after_hours, 0);
    assert_eq!(stats.overdue, 6);

    // A period with nothing: zeros, not errors.
    let empty = StatsQuery {
        days: vec![(
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )],
        weeks: vec![(
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )],
        ..query
    };
    let stats = store.stats(&empty).await.unwrap();
    assert_eq!(stats.days[0].calls, 0);
    assert!(stats.funnel.iter().all(|s| s.answered == 0));
    assert_eq!(stats.follow_up[0].median_seconds, None);
    assert!(stats.alerts.is_empty());
    assert_eq!(stats.callbacks, Callbacks::default());
}

#[tokio::test]
async fn sqlite_sums_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    suite(&SqliteStore::open(&dir.path().join("stats.db")).unwrap()).await;
}

#[tokio::test]
async fn supabase_sums_the_dashboard_on_real_postgrest() {
    let stack = SupabaseStack::start();
    suite(&supabase(&stack)).await;
}

#[tokio::test]
async fn outbox_sums_the_dashboard_on_supabase() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        OutboxConfig::default(),
    );
    suite(&store).await;
}
