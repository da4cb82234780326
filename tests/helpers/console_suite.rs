//! The console store suite: the same behaviour asked of every `ConsoleStore` (SQLite, Supabase
//! through real PostgREST, the outbox). It expects an empty store.
#![allow(clippy::too_many_lines)] // a suite reads as one story per part

use std::time::Duration;

use myriam::domain::{LeadId, LeadStatus, PhoneNumber};
use myriam::qualification::{Address, Lead, PersonName};
use myriam::store::console::{
    ApiTokenRecord, AuditAction, AuditEntry, ConsoleStore, Cursor, Email, FollowUp, FollowUpChange,
    LeadFilter, Note, Operator, Role, SearchTerm,
};
use myriam::store::{CallUpdate, Saved, Store};
use time::OffsetDateTime;
use uuid::Uuid;

use super::store_suite::sid;

pub fn operator(email: &str, role: Role) -> Operator {
    Operator {
        id: Uuid::new_v4(),
        email: Email::try_from(email).unwrap(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
        disabled: false,
        created_at: None,
    }
}

pub async fn suite<S: Store + ConsoleStore>(store: &S) {
    operators_sessions_tokens(store).await;
    throttling_and_audit(store).await;
    leads_list_follow_up_and_erasure(store).await;
}

async fn operators_sessions_tokens<S: ConsoleStore>(store: &S) {
    let admin = operator("admin@bp.example", Role::Admin);
    assert!(store.create_operator(&admin).await.unwrap());
    assert!(
        !store
            .create_operator(&operator("admin@bp.example", Role::Staff))
            .await
            .unwrap(),
        "one operator per e-mail"
    );
    store
        .create_operator(&operator("staff@bp.example", Role::Staff))
        .await
        .unwrap();
    let back = store
        .operator_by_email(&admin.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (back.id, back.role, back.disabled),
        (admin.id, Role::Admin, false)
    );
    assert_eq!(back.password_hash, admin.password_hash);
    assert_eq!(
        store.operator_by_id(admin.id).await.unwrap().unwrap().email,
        admin.email
    );
    let emails: Vec<String> = store
        .operators()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.email.to_string())
        .collect();
    assert_eq!(emails, ["admin@bp.example", "staff@bp.example"]);
    let staff = Email::try_from("staff@bp.example").unwrap();
    assert!(store.set_operator_disabled(&staff, true).await.unwrap());
    assert!(
        store
            .operator_by_email(&staff)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        store
            .set_operator_password(&staff, "$argon2id$new")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .operator_by_email(&staff)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    let nobody = Email::try_from("nobody@bp.example").unwrap();
    assert!(!store.set_operator_disabled(&nobody, true).await.unwrap());
    assert!(store.operator_by_email(&nobody).await.unwrap().is_none());

    // Sessions.
    store.create_session("s1", admin.id).await.unwrap();
    store.create_session("s2", admin.id).await.unwrap();
    let s1 = store.session("s1").await.unwrap().unwrap();
    assert_eq!(s1.operator_id, admin.id);
    assert!(s1.revoked_at.is_none());
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.touch_session("s1").await.unwrap();
    assert!(store.session("s1").await.unwrap().unwrap().last_seen_at > s1.last_seen_at);
    store.revoke_session("s1").await.unwrap();
    assert!(
        store
            .session("s1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .session("s2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    store.revoke_sessions_of(admin.id).await.unwrap();
    assert!(
        store
            .session("s2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(store.session("nope").await.unwrap().is_none());
    // Several at once (the live updates' poller): the ones that exist, revoked ones included.
    let mut many: Vec<String> = (0..120).map(|i| format!("absent-{i}")).collect();
    many.extend(["s1".to_owned(), "s2".to_owned()]);
    let mut found: Vec<String> = store
        .sessions(&many)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            assert!(s.revoked_at.is_some());
            s.id_hash
        })
        .collect();
    found.sort();
    assert_eq!(found, ["s1", "s2"]);
    assert!(store.sessions(&[]).await.unwrap().is_empty());

    // API tokens.
    let token = ApiTokenRecord {
        id: Uuid::new_v4(),
        name: "ci".to_owned(),
        role: Role::Staff,
        token_hash: "h1".to_owned(),
        created_at: None,
        revoked_at: None,
        operator_id: Some(admin.id),
        expires_at: Some(OffsetDateTime::now_utc() + time::Duration::days(30)),
        last_used_at: None,
    };
    assert!(store.create_api_token(&token).await.unwrap());
    assert!(
        !store.create_api_token(&token).await.unwrap(),
        "names are unique"
    );
    let back = store.api_token("h1").await.unwrap().unwrap();
    assert_eq!((back.name.as_str(), back.role), ("ci", Role::Staff));
    assert!(back.revoked_at.is_none());
    assert_eq!(back.operator_id, Some(admin.id));
    assert!(
        back.expires_at
            .is_some_and(|e| e > OffsetDateTime::now_utc())
    );
    assert!(back.last_used_at.is_none());
    store.touch_api_token(back.id).await.unwrap();
    let listed = store.api_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "the use is recorded");
    assert!(store.revoke_api_token("ci").await.unwrap());
    assert!(
        !store.revoke_api_token("ci").await.unwrap(),
        "already revoked"
    );
    assert!(
        store
            .api_token("h1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(store.api_token("h2").await.unwrap().is_none());
}

async fn throttling_and_audit<S: ConsoleStore>(store: &S) {
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    for _ in 0..3 {
        store.record_login_failure("ip:127.0.0.1").await.unwrap();
    }
    store.record_login_failure("ip:10.0.0.1").await.unwrap();
    assert_eq!(
        store
            .login_failures_since("ip:127.0.0.1", before)
            .await
            .unwrap()
            .len(),
        3
    );
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    assert!(
        store
            .login_failures_since("ip:127.0.0.1", later)
            .await
            .unwrap()
            .is_empty()
    );
    store.clear_login_failures("ip:127.0.0.1").await.unwrap();
    assert!(
        store
            .login_failures_since("ip:127.0.0.1", before)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .login_failures_since("ip:10.0.0.1", before)
            .await
            .unwrap()
            .len(),
        1
    );

    for (action, target) in [(AuditAction::Login, "op-1"), (AuditAction::Erase, "lead-1")] {
        store
            .append_audit(&AuditEntry {
                target: Some(target.to_owned()),
                client: Some("192.0.2.7".to_owned()),
                ..AuditEntry::new("admin@bp.example", action)
            })
            .await
            .unwrap();
    }
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, AuditAction::Erase, "newest first");
    assert_eq!(log[1].target.as_deref(), Some("op-1"));
    assert!(log[0].at.is_some());
    assert_eq!(store.audit_log(1).await.unwrap().len(), 1);
    assert_eq!(log[0].client.as_deref(), Some("192.0.2.7"));
    assert_eq!(log[0].count, 1);

    // Pages go by the entry's place: the page after the newest holds the older one.
    let newest = log[0].id.expect("the store numbers entries");
    let older = store.audit_page(Some(newest), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].target.as_deref(), Some("op-1"));
    assert!(store.audit_page(older[0].id, 10).await.unwrap().is_empty());

    // Repeated entries of one key and window are one entry with a count.
    let window = time::OffsetDateTime::now_utc() - time::Duration::minutes(15);
    for _ in 0..3 {
        store
            .bump_audit(
                &AuditEntry {
                    target: Some("ip:192.0.2.9".to_owned()),
                    ..AuditEntry::new("-", AuditAction::LoginThrottled)
                },
                window,
            )
            .await
            .unwrap();
    }
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].action, AuditAction::LoginThrottled);
    assert_eq!(log[0].count, 3);
    // A new window starts a new entry.
    store
        .bump_audit(
            &AuditEntry {
                target: Some("ip:192.0.2.9".to_owned()),
                ..AuditEntry::new("-", AuditAction::LoginThrottled)
            },
            time::OffsetDateTime::now_utc() + time::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(store.audit_log(10).await.unwrap().len(), 4);

    // Failures that can no longer count are pruned, whatever their key.
    store.record_login_failure("ip:10.9.9.9").await.unwrap();
    store.record_login_failure("ip:10.9.9.9").await.unwrap();
    store.forget_login_failure("ip:10.9.9.9").await.unwrap();
    assert_eq!(
        store
            .login_failures_since("ip:10.9.9.9", before)
            .await
            .unwrap()
            .len(),
        1,
        "forget removes one"
    );
    store
        .prune_login_failures(time::OffsetDateTime::now_utc() + time::Duration::seconds(5))
        .await
        .unwrap();
    for key in ["ip:10.9.9.9", "ip:10.0.0.1"] {
        assert!(
            store
                .login_failures_since(key, before)
                .await
                .unwrap()
                .is_empty(),
            "{key}"
        );
    }
}

fn named(name: &str, phone: &str, address: &str) -> Lead {
    let mut lead = Lead::new(LeadId::new());
    lead.nom_complet = Some(PersonName::try_from(name).unwrap());
    lead.telephone = Some(PhoneNumber::try_from(phone).unwrap());
    lead.adresse_complete = Some(Address::try_from(address).unwrap());
    lead
}

fn ids(page: &myriam::store::console::LeadPage) -> Vec<LeadId> {
    page.leads.iter().map(|l| l.lead.id).collect()
}

async fn leads_list_follow_up_and_erasure<S: Store + ConsoleStore>(store: &S) {
    let a = named(
        "Marie-Ève Côté",
        "514 555 0101",
        "12 rue Saint-Denis, Montréal",
    );
    let mut b = named("Luc Ouellet", "438 555 0102", "45 avenue du Parc, Laval");
    b.status = LeadStatus::Qualifie;
    b.urgence = Some(true);
    let c = named("Anne Roy", "514 555 0101", "7 chemin des Érables, Québec");
    for lead in [&a, &b, &c] {
        assert_eq!(store.save_lead(lead).await.unwrap(), Saved::Applied);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Newest first; cursor pagination.
    let all = store.search_leads(&LeadFilter::default()).await.unwrap();
    assert_eq!(ids(&all), [c.id, b.id, a.id]);
    assert!(all.next.is_none());
    assert_eq!(all.leads[0].follow_up.suivi, FollowUp::Nouveau);
    let first = store
        .search_leads(&LeadFilter {
            limit: 2,
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&first), [c.id, b.id]);
    let cursor = first.next.expect("more follow");
    let cursor = Cursor::try_from(cursor.encode().as_str()).unwrap();
    let second = store
        .search_leads(&LeadFilter {
            limit: 2,
            cursor: Some(cursor),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&second), [a.id]);
    assert!(second.next.is_none());

    // Filters and search.
    let urgent = store
        .search_leads(&LeadFilter {
            urgent: Some(true),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&urgent), [b.id]);
    let qualified = store
        .search_leads(&LeadFilter {
            status: Some(LeadStatus::Qualifie),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&qualified), [b.id]);
    for (term, expected) in [
        ("côté", vec![a.id]),
        ("Parc", vec![b.id]),
        ("514-555-0101", vec![c.id, a.id]),
        ("(438) 555", vec![b.id]),
        ("Érables", vec![c.id]),
        ("personne", vec![]),
    ] {
        let page = store
            .search_leads(&LeadFilter {
                search: Some(SearchTerm::try_from(term).unwrap()),
                ..LeadFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&page), expected, "search {term:?}");
    }
    let future = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let nothing = store
        .search_leads(&LeadFilter {
            created_from: Some(future),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert!(nothing.leads.is_empty());
    let before = store
        .search_leads(&LeadFilter {
            created_before: Some(future),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(before.leads.len(), 3);

    // Follow-up: versioned, a stale edit changes nothing.
    let state = store.follow_up(a.id).await.unwrap().unwrap();
    assert_eq!((state.suivi, state.version), (FollowUp::Nouveau, 0));
    let note = Note::try_from("Rappelé, « rendez-vous » jeudi").unwrap();
    let since = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let FollowUpChange::Applied(applied) = store
        .change_follow_up(a.id, 0, FollowUp::Planifie, Some(&note), "staff@bp.example")
        .await
        .unwrap()
    else {
        panic!("first change applies")
    };
    assert_eq!(applied.version, 1);
    assert_eq!(applied.note.as_deref(), Some(note.as_str()));
    assert_eq!(applied.by.as_deref(), Some("staff@bp.example"));
    let refused = store
        .change_follow_up(a.id, 0, FollowUp::Perdu, None, "other@bp.example")
        .await
        .unwrap();
    assert_eq!(refused, FollowUpChange::Stale(applied.clone()));
    assert_eq!(
        store
            .change_follow_up(LeadId::new(), 0, FollowUp::Perdu, None, "x")
            .await
            .unwrap(),
        FollowUpChange::NotFound
    );
    let planned = store
        .search_leads(&LeadFilter {
            suivi: Some(FollowUp::Planifie),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&planned), [a.id]);
    let changed = store
        .search_leads(&LeadFilter {
            updated_after: Some(since),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert!(
        ids(&changed).contains(&a.id),
        "a follow-up change is an update"
    );
    // The machine's save keeps the staff's follow-up.
    let current = store.get_lead(a.id).await.unwrap().unwrap();
    assert_eq!(store.save_lead(&current).await.unwrap(), Saved::Applied);
    assert_eq!(store.follow_up(a.id).await.unwrap().unwrap(), applied);

    // Erasure: every lead, call and event of one number; the others stay.
    let mut call = CallUpdate::new(sid(77));
    call.lead_id = Some(a.id);
    call.from_number = Some("+15145550101".to_owned());
    store.upsert_call(&call).await.unwrap();
    let mut orphan = CallUpdate::new(sid(78));
    orphan.from_number = Some("+15145550101".to_owned());
    store.upsert_call(&orphan).await.unwrap();
    let mut other = CallUpdate::new(sid(79));
    other.lead_id = Some(b.id);
    other.from_number = Some("+14385550102".to_owned());
    store.upsert_call(&other).await.unwrap();
    assert!(
        store
            .record_event(&format!("twilio:{}:status:completed", sid(77)))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_event(&format!("twilio:{}:status:completed", sid(79)))
            .await
            .unwrap()
    );
    let erasure = store
        .erase_caller(&PhoneNumber::try_from("+15145550101").unwrap())
        .await
        .unwrap();
    let mut erased = erasure.lead_ids.clone();
    erased.sort();
    let mut expected = vec![a.id, c.id];
    expected.sort();
    assert_eq!(erased, expected);
    assert_eq!(erasure.calls, 2);
    assert_eq!(erasure.events, 1);
    assert!(store.get_lead(a.id).await.unwrap().is_none());
    assert!(store.get_lead(c.id).await.unwrap().is_none());
    assert!(store.get_call(&sid(77)).await.unwrap().is_none());
    assert!(store.get_call(&sid(78)).await.unwrap().is_none());
    assert!(
        !store
            .event_processed(&format!("twilio:{}:status:completed", sid(77)))
            .await
            .unwrap()
    );
    assert!(store.get_lead(b.id).await.unwrap().is_some());
    assert!(store.get_call(&sid(79)).await.unwrap().is_some());
    assert!(
        store
            .event_processed(&format!("twilio:{}:status:completed", sid(79)))
            .await
            .unwrap()
    );
    let again = store
        .erase_caller(&PhoneNumber::try_from("+15145550101").unwrap())
        .await
        .unwrap();
    assert!(again.lead_ids.is_empty() && again.calls == 0);
}
