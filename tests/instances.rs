//! Several gateway instances on one Supabase (real PostgREST + PostgreSQL): each test runs two
//! `Calls` lifecycles, each with its own locks and its own outbox, as two processes would.

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use helpers::ivr::{IvrCall, QUALIFYING};
use helpers::supabase::SupabaseStack;
use helpers::{TestApp, spawn_app_with};
use myriam::calls::{Calls, Change, NewCall};
use myriam::config::{Settings, StoreKind};
use myriam::domain::{CallSid, ConversationMode, LeadId, LeadStatus};
use myriam::locks::KeyedLocks;
use myriam::qualification::{Lead, Turn, prompts};
use myriam::store::outbox::{OutboxConfig, OutboxStore};
use myriam::store::sqlite::SqliteStore;
use myriam::store::supabase::SupabaseStore;
use myriam::store::{AnyStore, Saved, Store};
use secrecy::SecretString;

fn remote(url: &str, key: &str) -> SupabaseStore {
    SupabaseStore::new(
        url,
        &SecretString::from(key.to_owned()),
        "bp",
        Duration::from_secs(5),
    )
}

fn outbox(stack: &SupabaseStack, dir: &tempfile::TempDir, name: &str) -> OutboxStore {
    OutboxStore::new(
        remote(&stack.url, &stack.service_key),
        SqliteStore::open(&dir.path().join(name)).unwrap(),
        OutboxConfig::default(),
    )
}

fn instance(store: &OutboxStore) -> Calls {
    Calls::new(
        AnyStore::Supabase(store.clone()),
        Arc::new(KeyedLocks::default()),
    )
}

fn greeting() -> prompts::Greeting {
    prompts::Greeting {
        disclosure: true,
        office_open: true,
    }
}

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

fn new_call(sid: &CallSid) -> NewCall {
    NewCall {
        call_sid: Some(sid.clone()),
        from: Some("+15145550199".to_owned()),
        status: Some("ringing".to_owned()),
        mode: Some(ConversationMode::Ivr),
        ..NewCall::default()
    }
}

/// A `/twilio/voice` retry that lands on another instance at the same moment gets the same lead:
/// one lead per call in Supabase, no orphan. (On 54227cb each instance found no lead under its
/// own lock and created one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voice_retry_on_another_instance_gets_the_same_lead() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        instance(&outbox(&stack, &dir, "a.db")),
        instance(&outbox(&stack, &dir, "b.db")),
    );
    for n in 0..10u32 {
        let sid = CallSid::try_from(format!("CA{n:032x}").as_str()).unwrap();
        let call = new_call(&sid);
        let (first, second) = tokio::join!(a.start(&call, greeting()), b.start(&call, greeting()));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.id, second.id, "call {n}: one lead");
        assert_eq!(
            first.conversation, second.conversation,
            "the same first TwiML"
        );
    }
    assert_eq!(stack.psql("select count(*) from bp.leads"), "10");
    assert_eq!(
        stack.psql("select count(*) from bp.leads l where not exists (select 1 from bp.calls c where c.lead_id = l.id)"),
        "0",
        "no orphan lead"
    );
}

/// Instance B changes a lead while instance A saves it between B's read and B's write (the
/// sixth answer on A, a status callback on B): B's save is stale, so B re-runs its operation on
/// the fresh lead. Both changes are kept. (On 54227cb B wrote back the whole row it had read:
/// A's change was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_that_loses_the_race_is_re_applied_on_the_fresh_lead() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store_b = outbox(&stack, &dir, "b.db");
    let b = instance(&store_b);
    let sid = CallSid::try_from("CA0000000000000000000000000000aaaa").unwrap();
    let lead = b.start(&new_call(&sid), greeting()).await.unwrap();
    let (url, key) = (stack.url.clone(), stack.service_key.clone());
    let runs = AtomicU32::new(0);
    let answer = b
        .change_lead(lead.clone(), |fresh| {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                // Instance A saves between B's read and B's write.
                let (url, key, mut other) = (url.clone(), key.clone(), fresh.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Runtime::new().unwrap();
                    other
                        .conversation
                        .push(Turn::caller(None, "réponse sur A".to_owned(), true));
                    assert_eq!(
                        rt.block_on(remote(&url, &key).save_lead(&other)).unwrap(),
                        Saved::Applied
                    );
                })
                .join()
                .unwrap();
            }
            fresh
                .conversation
                .push(Turn::caller(None, "réponse sur B".to_owned(), true));
            Change::new(fresh.conversation.len()).saved_if(true)
        })
        .await
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "re-run once on the fresh lead"
    );
    let stored = b.store().get_lead(lead.id).await.unwrap().unwrap();
    let spoken: Vec<&str> = stored
        .conversation
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        spoken[1..],
        ["réponse sur A", "réponse sur B"],
        "no lost answer"
    );
    assert_eq!(answer, 3);
    assert_eq!(stored.version, 3);
}

/// The call ends on instance B while A has just qualified the lead: the abandonment is one
/// conditional statement, so the qualified lead stays qualified.
#[tokio::test]
async fn the_end_of_a_call_never_abandons_a_lead_qualified_elsewhere() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let b = instance(&outbox(&stack, &dir, "b.db"));
    let sid = CallSid::try_from("CA0000000000000000000000000000bbbb").unwrap();
    let seen_by_b = b.start(&new_call(&sid), greeting()).await.unwrap();
    let mut qualified = seen_by_b.clone();
    qualified.status = LeadStatus::Qualifie;
    let a = remote(&stack.url, &stack.service_key);
    assert_eq!(a.save_lead(&qualified).await.unwrap(), Saved::Applied);
    // B still holds the copy it read before (en_cours at most).
    assert_eq!(
        b.abandon_if_incomplete(seen_by_b.clone()).await.unwrap(),
        LeadStatus::Qualifie
    );
    assert_eq!(
        stack.psql(&format!(
            "select status from bp.leads where id = '{}'",
            seen_by_b.id
        )),
        "qualifie"
    );
}

/// A write queued long ago (an instance started on an old `DATABASE_PATH`) is replayed as the
/// operation it was: based on a version Supabase no longer holds, it never overwrites the newer
/// lead; it is kept as a dead letter.
#[tokio::test]
async fn a_stale_queued_write_never_overwrites_newer_data() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let lead = Lead::new(LeadId::new());
    let live = remote(&stack.url, &stack.service_key);
    assert_eq!(live.save_lead(&lead).await.unwrap(), Saved::Applied);
    let mut read = live.get_lead(lead.id).await.unwrap().unwrap();

    // The old instance: Supabase unreachable, its change queued.
    let old_path = dir.path().join("old.db");
    let old = OutboxStore::new(
        SupabaseStore::new(
            "http://127.0.0.1:9",
            &SecretString::from("k".to_owned()),
            "bp",
            Duration::from_millis(200),
        ),
        SqliteStore::open(&old_path).unwrap(),
        OutboxConfig::default(),
    );
    read.conversation
        .push(Turn::caller(None, "ancienne réponse".to_owned(), true));
    assert_eq!(old.save_lead(&read).await.unwrap(), Saved::Applied);
    assert_eq!(old.depth().await.unwrap(), 1);
    drop(old);

    // Meanwhile another instance saves a newer version.
    let mut newer = live.get_lead(lead.id).await.unwrap().unwrap();
    newer.status = LeadStatus::Qualifie;
    assert_eq!(live.save_lead(&newer).await.unwrap(), Saved::Applied);

    // The old file starts again, with Supabase reachable: the replay is stale.
    let restarted = OutboxStore::new(
        remote(&stack.url, &stack.service_key),
        SqliteStore::open(&old_path).unwrap(),
        OutboxConfig::default(),
    );
    assert_eq!(restarted.flush(Duration::from_secs(5)).await.unwrap(), 0);
    let dead = restarted.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("stale"), "{}", dead[0].error);
    let stored = live.get_lead(lead.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.version), (LeadStatus::Qualifie, 2));
    assert!(
        stored.conversation.is_empty(),
        "the stale snapshot was not applied"
    );
}

/// A write whose answer was lost (applied, then queued and replayed) is recognised as applied,
/// not dead-lettered.
#[tokio::test]
async fn a_replayed_write_supabase_already_holds_is_done() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = outbox(&stack, &dir, "a.db");
    let lead = Lead::new(LeadId::new());
    let live = remote(&stack.url, &stack.service_key);
    assert_eq!(live.save_lead(&lead).await.unwrap(), Saved::Applied);
    let mut changed = live.get_lead(lead.id).await.unwrap().unwrap();
    changed.status = LeadStatus::EnCours;
    assert_eq!(live.save_lead(&changed).await.unwrap(), Saved::Applied);
    // The same save, as the outbox would replay it.
    let op = myriam::store::WriteOp::SaveLead(myriam::store::LeadRow::from(&changed));
    assert_eq!(live.apply(&op).await.unwrap(), Saved::Stale);
    assert!(
        live.holds(&myriam::store::LeadRow::from(&changed))
            .await
            .unwrap()
    );
    let mut other = changed.clone();
    other.status = LeadStatus::Abandonne;
    assert!(
        !live
            .holds(&myriam::store::LeadRow::from(&other))
            .await
            .unwrap()
    );
    drop(store);
}

fn on_supabase(stack: &SupabaseStack) -> impl FnOnce(&mut Settings) + '_ {
    move |s| {
        s.store.kind = StoreKind::Supabase;
        s.store.supabase_url = Some(stack.url.parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from(stack.service_key.clone()));
    }
}

/// [`on_supabase`] with Supabase reached through `proxy` (which counts or holds requests).
fn on_supabase_through<'a>(
    stack: &'a SupabaseStack,
    proxy: &'a helpers::delay_proxy::DelayProxy,
) -> impl FnOnce(&mut Settings) + 'a {
    move |s| {
        on_supabase(stack)(s);
        s.store.supabase_url = Some(proxy.url.parse().unwrap());
    }
}

fn outbox_of(app: &TestApp) -> &OutboxStore {
    match app.state_store() {
        AnyStore::Supabase(outbox) => outbox,
        AnyStore::Sqlite(_) => panic!("STORE=supabase expected"),
    }
}

/// Waits until every instance's outbox has replayed (none dead-lettered).
async fn replayed(apps: &[&TestApp]) {
    let started = std::time::Instant::now();
    for app in apps {
        let outbox = outbox_of(app);
        while outbox.depth().await.unwrap() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "outbox not replayed: {:?}",
                outbox.pending_summary().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            outbox.dead_letters().await.unwrap(),
            Vec::new(),
            "nothing dead-lettered"
        );
    }
}

/// What a call left in Supabase that one instance must leave the same: the lead's status,
/// fields and conversation (every turn, in order, without the time it was said: two runs say it
/// at different times), the call's status.
fn outcome(stack: &SupabaseStack, sid: &str) -> String {
    stack.psql(&format!(
        "select l.status || '|' || coalesce(l.nom_complet, '') || '|' || coalesce(l.telephone, '')
                || '|' || coalesce(l.adresse_complete, '') || '|' || coalesce(l.type_service, '')
                || '|' || coalesce(l.description, '') || '|' || l.urgence
                || '|' || (select coalesce(jsonb_agg(t - 'at' order by n), '[]'::jsonb)
                             from jsonb_array_elements(l.conversation) with ordinality as x(t, n))::text
                || '|' || c.status
           from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
    ))
}

fn no_orphan_lead(stack: &SupabaseStack) {
    assert_eq!(
        stack.psql(
            "select count(*) from bp.leads l \
             where not exists (select 1 from bp.calls c where c.lead_id = l.id)"
        ),
        "0",
        "no orphan lead"
    );
}

/// A brownout while a call moves between instances: PostgREST stops after the call's first
/// answer; every later answer reaches B first, which does not know the call, holds the answer
/// (pause, redirect), and the load balancer brings it to A, which does; Twilio's `completed`
/// reaches B before the last answer reaches A. PostgREST comes back, both outboxes replay: the
/// lead and call rows are those one instance leaves for the same call, no answer lost, no orphan
/// lead. (On 5521a52, B started a second lead for the call and took the answers on it; its
/// writes were dead-lettered as stale when Supabase returned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_brownout_while_a_call_moves_between_instances_ends_as_on_one_instance() {
    let mut stack = SupabaseStack::start();
    let a = spawn_app_with(on_supabase(&stack)).await;
    let b = spawn_app_with(on_supabase(&stack)).await;
    let client = reqwest::Client::new();
    let (url_a, url_b) = (a.url(""), b.url(""));

    // What one instance makes of the call, Supabase up, for a qualified and an unfinished call.
    for (sid, answers) in [(sid(1), 6), (sid(2), 3)] {
        let mut call = IvrCall::new(&sid);
        call.voice(&client, &url_a).await;
        for answer in &QUALIFYING[..answers] {
            call.answer(&client, || url_a.clone(), answer).await;
        }
        call.status(&client, &url_a, "completed", 1).await;
    }

    // Qualified: started before the brownout, the last answer after the call's end.
    let mut qualified = IvrCall::new(&sid(3));
    qualified.voice(&client, &url_a).await;
    qualified
        .answer(&client, || url_a.clone(), QUALIFYING[0])
        .await;
    stack.stop_postgrest();
    let mut hops = 0u32;
    let mut b_then_a = || {
        hops += 1;
        // B first, B again on the first redirect, then A.
        if hops % 3 == 0 {
            url_a.clone()
        } else {
            url_b.clone()
        }
    };
    for answer in &QUALIFYING[1..5] {
        qualified.answer(&client, &mut b_then_a, answer).await;
    }
    qualified.status(&client, &url_b, "completed", 1).await;
    let last = qualified
        .answer(&client, &mut b_then_a, QUALIFYING[5])
        .await;
    assert!(last.ends_with("<Hangup/></Response>"), "{last}");

    // Unfinished: started during the brownout, three answers, ended on B.
    let mut unfinished = IvrCall::new(&sid(4));
    unfinished.voice(&client, &url_a).await;
    for answer in &QUALIFYING[..3] {
        unfinished.answer(&client, &mut b_then_a, answer).await;
    }
    unfinished.status(&client, &url_b, "completed", 1).await;
    assert!(
        qualified.holds >= 8 && unfinished.holds >= 6,
        "B held the answers"
    );
    assert!(
        outbox_of(&a).depth().await.unwrap() > 0 && outbox_of(&b).depth().await.unwrap() > 0,
        "both instances queued writes"
    );

    stack.start_postgrest();
    replayed(&[&a, &b]).await;
    let one_instance = outcome(&stack, &sid(1));
    assert!(
        one_instance.starts_with("qualifie|Marie-Ève Côté|"),
        "{one_instance}"
    );
    assert_eq!(outcome(&stack, &sid(3)), one_instance);
    let one_instance = outcome(&stack, &sid(2));
    assert!(
        one_instance.starts_with("abandonne|Marie-Ève Côté|"),
        "{one_instance}"
    );
    assert_eq!(outcome(&stack, &sid(4)), one_instance);
    assert_eq!(stack.psql("select count(*) from bp.leads"), "4");
    no_orphan_lead(&stack);
}

/// A lead save queued on A during an outage, based on the version before the call's end (on B,
/// Supabase reachable there) abandoned the lead, is re-based on replay: the answer is kept and
/// the status is what one instance taking the answer, then the end, leaves — `qualifie` for a
/// last answer, else `abandonne`. (On 5521a52 it was dead-lettered as stale: the answer lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_save_queued_before_the_calls_end_elsewhere_is_re_based_not_lost() {
    use myriam::calls::StatusReport;
    use myriam::store::CallUpdate;
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    for (n, qualifies) in [(1u32, false), (2, true)] {
        let sid = CallSid::try_from(sid(100 + n).as_str()).unwrap();
        let a_path = dir.path().join(format!("a{n}.db"));
        let a = OutboxStore::new(
            remote(&stack.url, &stack.service_key),
            SqliteStore::open(&a_path).unwrap(),
            OutboxConfig::default(),
        );
        let lead = instance(&a)
            .start(&new_call(&sid), greeting())
            .await
            .unwrap();
        drop(a);
        // Supabase unreachable from A: the answer is queued, based on version 1.
        let a_down = OutboxStore::new(
            SupabaseStore::new(
                "http://127.0.0.1:9",
                &SecretString::from("k".to_owned()),
                "bp",
                Duration::from_millis(200),
            ),
            SqliteStore::open(&a_path).unwrap(),
            OutboxConfig::default(),
        );
        instance(&a_down)
            .change_lead(lead.clone(), |fresh| {
                fresh
                    .conversation
                    .push(Turn::caller(None, "la réponse".to_owned(), true));
                fresh
                    .conversation
                    .push(Turn::myriam(None, "Merci.".to_owned()));
                fresh.status = if qualifies {
                    LeadStatus::Qualifie
                } else {
                    LeadStatus::EnCours
                };
                Change::new(()).saved_if(true)
            })
            .await
            .unwrap();
        assert_eq!(a_down.depth().await.unwrap(), 1);
        drop(a_down);
        // Meanwhile Twilio's `completed` reaches B, which reaches Supabase: the lead is abandoned.
        let b = instance(&outbox(&stack, &dir, &format!("b{n}.db")));
        b.report_status(StatusReport {
            update: CallUpdate::new(sid.clone()),
            status: Some("completed".to_owned()),
            ends_call: true,
            from_bridged_side: false,
            failed: false,
            idempotency_key: None,
        })
        .await
        .unwrap();
        let id = lead.id;
        assert_eq!(
            stack.psql(&format!("select status from bp.leads where id = '{id}'")),
            "abandonne"
        );
        // A reaches Supabase again and replays.
        let a_up = OutboxStore::new(
            remote(&stack.url, &stack.service_key),
            SqliteStore::open(&a_path).unwrap(),
            OutboxConfig::default(),
        );
        assert_eq!(a_up.flush(Duration::from_secs(5)).await.unwrap(), 0);
        assert_eq!(a_up.dead_letters().await.unwrap(), Vec::new(), "not lost");
        let stored = a_up.remote().get_lead(id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            if qualifies {
                LeadStatus::Qualifie
            } else {
                LeadStatus::Abandonne
            }
        );
        assert!(
            stored.conversation.iter().any(|t| t.text == "la réponse"),
            "the answer is kept"
        );
    }
}

/// The call's end reaches B before the instance that started the call has stored it in Supabase
/// (its start still queued there): B cannot find the lead, so it queues the abandonment of the
/// call's lead, which waits (409) until the call has its lead, then applies. A repeated end does
/// the same. (On 5521a52 the end changed nothing: the lead stayed open for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_calls_end_before_its_start_reaches_supabase_abandons_the_lead_once_it_does() {
    use myriam::calls::StatusReport;
    use myriam::store::CallUpdate;
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let b_store = outbox(&stack, &dir, "b.db");
    let b = instance(&b_store);
    let sid = CallSid::try_from(sid(200).as_str()).unwrap();
    let end = |status: &str| StatusReport {
        update: CallUpdate::new(sid.clone()),
        status: Some(status.to_owned()),
        ends_call: true,
        from_bridged_side: false,
        failed: false,
        idempotency_key: None,
    };
    b.report_status(end("completed")).await.unwrap();
    b.report_status(end("completed")).await.unwrap();
    let pending = b_store.pending_summary().await.unwrap();
    assert!(
        pending
            .iter()
            .any(|(_, op, _, _)| *op == "abandon_call_lead"),
        "{pending:?}"
    );
    assert_eq!(
        b_store.flush(Duration::from_secs(5)).await.unwrap(),
        pending.len()
    );
    // A's start reaches Supabase: the call gets its lead.
    let a = instance(&outbox(&stack, &dir, "a.db"));
    let lead = a.start(&new_call(&sid), greeting()).await.unwrap();
    assert_eq!(b_store.flush(Duration::from_secs(5)).await.unwrap(), 0);
    assert_eq!(b_store.dead_letters().await.unwrap(), Vec::new());
    assert_eq!(
        stack.psql(&format!(
            "select status from bp.leads where id = '{}'",
            lead.id
        )),
        "abandonne"
    );
    assert_eq!(
        stack.psql(&format!(
            "select status from bp.calls where call_sid = '{sid}'"
        )),
        "completed"
    );
    no_orphan_lead(&stack);
}

/// Two instances that both know a bridged call (Twilio retried `/twilio/voice` on B), then
/// PostgREST stops: the call's Media Stream token, presented to A and replayed to B, opens no
/// stream while Supabase cannot confirm its single use (each refuses, the caller goes on in the
/// IVR), so never two Vapi calls for one Twilio call. With Supabase up, the first stream wins and
/// the replay on the other instance is refused. (Before: an instance took a use queued in its own
/// outbox as proof of single use, so any instance that could read the call bridged it: here A did,
/// during the outage.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_media_stream_token_opens_at_most_one_stream_whatever_is_down() {
    use futures_util::StreamExt as _;
    use helpers::fake_vapi::{Behaviour, FakeVapi};
    use helpers::{open_media_stream, twiml_parameter};
    use tokio_tungstenite::tungstenite::Message;

    let mut stack = SupabaseStack::start();
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let bridged = |s: &mut Settings| {
        on_supabase(&stack)(s);
        s.call_mode = myriam::config::CallMode::Bridge;
        // One deployment: the same auth token, so both instances accept the same tokens.
        s.twilio.auth_token = Some(SecretString::from(
            "0123456789abcdef0123456789abcdef".to_owned(),
        ));
        s.vapi.private_key = Some(SecretString::from(
            "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned(),
        ));
        s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
        s.vapi.base_url = vapi.base.parse().unwrap();
        s.public_base_url = Some(myriam::config::PublicBaseUrl::new("https://gw.bp.test"));
    };
    let a = spawn_app_with(bridged).await;
    let b = spawn_app_with(bridged).await;
    let client = reqwest::Client::new();
    let voice = |app: &TestApp, sid: String| {
        let request = client
            .post(app.url("/twilio/voice"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "CallSid={sid}&AccountSid=AC0&From=%2B15145550199&CallStatus=ringing"
            ));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let start = |sid: &str, twiml: &str| {
        Message::Text(
            serde_json::json!({"event": "start", "streamSid": "MZ1",
                "start": {"streamSid": "MZ1", "callSid": sid, "accountSid": "AC0",
                    "customParameters": {"call_sid": sid, "lead_id": twiml_parameter(twiml, "lead_id"),
                                         "token": twiml_parameter(twiml, "token")}}})
            .to_string()
            .into(),
        )
    };
    // Whether the gateway kept the stream (a Vapi call behind it) or closed it (refused).
    let kept = |addr: std::net::SocketAddr, start: Message| async move {
        let mut socket = open_media_stream(addr, start).await;
        !matches!(
            tokio::time::timeout(Duration::from_secs(3), socket.next()).await,
            Ok(None | Some(Ok(Message::Close(_)) | Err(_)))
        )
    };

    // Supabase up: the first stream is kept, the replay on the other instance is refused.
    let up = sid(61);
    let twiml = voice(&a, up.clone()).await;
    assert_eq!(
        voice(&b, up.clone()).await,
        twiml,
        "a retried webhook gets the same answer"
    );
    assert!(
        kept(a.addr, start(&up, &twiml)).await,
        "the stream is bridged"
    );
    assert!(
        !kept(b.addr, start(&up, &twiml)).await,
        "the replay is refused"
    );
    assert_eq!(vapi.creates(), 1);

    // Supabase down: both instances know the call, neither can confirm the token's single use.
    let down = sid(62);
    let twiml = voice(&a, down.clone()).await;
    assert_eq!(voice(&b, down.clone()).await, twiml);
    stack.stop_postgrest();
    let on_a = kept(a.addr, start(&down, &twiml)).await;
    let on_b = kept(b.addr, start(&down, &twiml)).await;
    assert!(
        u8::from(on_a) + u8::from(on_b) <= 1,
        "one token opened {} streams",
        u8::from(on_a) + u8::from(on_b)
    );
    assert_eq!(
        vapi.creates(),
        1,
        "no Vapi call while Supabase cannot confirm the token's single use"
    );
    // The caller is still served: Twilio requests the <Connect action>, the IVR goes on.
    let continued = client
        .post(a.url("/twilio/stream-ended"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("CallSid={down}&AccountSid=AC0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        myriam::twilio::twiml::gather_action(&continued).is_some(),
        "{continued}"
    );
    stack.start_postgrest();
}

/// A Vapi tool call that reaches another instance while the instance that took the call's
/// previous answer is still saving it (its write to Supabase missed the 2 s deadline and is
/// queued; the write itself lands late): the tool call waits for that answer, re-reading, and if
/// it is still missing applies it first from the call's history (`artifact.messages`), under its
/// own tool-call id. Every answer ends in its own field, no result is an error, nothing is
/// dead-lettered. First the save lands during the wait (2.5 s), then long after it (8 s).
/// (Before: B applied the second answer to the field the first was for, and A's queued save was
/// dead-lettered as stale: the caller's name lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vapi_tool_call_sees_every_earlier_answer_of_its_call() {
    use helpers::delay_proxy::DelayProxy;
    use serde_json::{Value, json};
    const SECRET: &str = "vapi-shared-secret-for-tests";
    let stack = SupabaseStack::start();
    let proxy = DelayProxy::start(&stack.url).await;
    let a = spawn_app_with(|s| {
        on_supabase(&stack)(s);
        s.store.supabase_url = Some(proxy.url.parse().unwrap());
        s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned()));
    })
    .await;
    let b = spawn_app_with(|s| {
        on_supabase(&stack)(s);
        s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned()));
    })
    .await;
    let client = reqwest::Client::new();
    let fields = |sid: &str| {
        stack.psql(&format!(
            "select l.status || '|' || coalesce(l.nom_complet, '') || '|' || coalesce(l.telephone, '')
                    || '|' || coalesce(l.adresse_complete, '') || '|' || coalesce(l.type_service, '')
                    || '|' || coalesce(l.description, '') || '|' || l.urgence
                    || '|' || (select string_agg(t->>'text', ' / ' order by n)
                                 from jsonb_array_elements(l.conversation) with ordinality as x(t, n)
                                where t->>'speaker' = 'caller')
               from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
        ))
    };
    // `held`: how long A's first save is held back (`None`: a call on one instance, for reference).
    let mut reference = None;
    for (n, held) in [
        (0u32, None),
        (1, Some(Duration::from_millis(2500))),
        (2, Some(Duration::from_secs(8))),
    ] {
        let sid = sid(300 + n);
        IvrCall::new(&sid).voice(&client, &b.url("")).await;
        let mut history: Vec<Value> = Vec::new();
        for (step, answer) in QUALIFYING.iter().enumerate() {
            let id = format!("call_{n}_{step}");
            let tool_call = json!({"id": id, "type": "function",
                "function": {"name": "enregistrer_reponse",
                             "arguments": json!({"reponse": answer}).to_string()}});
            let body = json!({"message": {"type": "tool-calls",
                "call": {"id": format!("vapi-{n}"), "phoneCallProviderId": sid},
                "toolCallList": [tool_call],
                "artifact": {"messages": history}}});
            // The first answer on A, its save held; every later one on B.
            let on = if step == 0 && held.is_some() { &a } else { &b };
            if step == 0 {
                if let Some(delay) = held {
                    proxy.hold("PATCH /rest/v1/leads", delay);
                }
            }
            let started = std::time::Instant::now();
            let reply: Value = client
                .post(on.url("/vapi/webhook"))
                .header("x-vapi-secret", SECRET)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if step == 0 && held.is_some() {
                assert!(
                    started.elapsed() >= Duration::from_secs(2) && proxy.held() > 0,
                    "A's save was held past its deadline"
                );
                assert!(outbox_of(&a).depth().await.unwrap() > 0, "A queued it");
            }
            if step == 1 {
                proxy.release();
            }
            let result = reply["results"][0]["result"]
                .as_str()
                .unwrap_or_else(|| panic!("call {n}, answer {step}: not a result: {reply}"))
                .to_owned();
            history.push(json!({"role": "tool_calls", "toolCalls": [tool_call]}));
            history.push(json!({"role": "tool_call_result", "toolCallId": id,
                                "name": "enregistrer_reponse", "result": result}));
        }
        replayed(&[&a, &b]).await;
        let got = fields(&sid);
        match &reference {
            None => {
                assert!(got.starts_with("qualifie|Marie-Ève Côté|"), "{got}");
                assert!(got.ends_with(&QUALIFYING.join(" / ")), "{got}");
                reference = Some(got);
            }
            Some(one_instance) => assert_eq!(&got, one_instance, "call {n}"),
        }
    }
    // The late writes landed on nothing: no second copy of an answer.
    tokio::time::sleep(Duration::from_secs(9)).await;
    replayed(&[&a, &b]).await;
    assert_eq!(fields(&sid(302)), reference.unwrap());
    no_orphan_lead(&stack);
}

/// Twilio retries `/twilio/voice` on B while Supabase is down (A had stored the call and its lead
/// just before): B cannot see the call's lead and starts a second one locally, and the caller
/// answers on B. When Supabase returns, B's start finds the call's lead (insert-or-get), and its
/// answers are merged into that lead instead of being dead-lettered: one lead for the call, with
/// every answer in its field, as one instance leaves it. (Before: B's saves of its second lead were
/// dead-lettered as stale, the caller's answers lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voice_retry_during_an_outage_ends_in_one_lead_with_every_answer() {
    let mut stack = SupabaseStack::start();
    let a = spawn_app_with(on_supabase(&stack)).await;
    let b = spawn_app_with(on_supabase(&stack)).await;
    let client = reqwest::Client::new();
    let (url_a, url_b) = (a.url(""), b.url(""));
    let fields = |stack: &SupabaseStack, sid: &str| {
        stack.psql(&format!(
            "select l.status || '|' || coalesce(l.nom_complet, '') || '|' || coalesce(l.telephone, '')
                    || '|' || coalesce(l.adresse_complete, '') || '|' || coalesce(l.type_service, '')
                    || '|' || coalesce(l.description, '') || '|' || l.urgence || '|' || c.status
               from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
        ))
    };

    // One instance, Supabase up.
    let mut reference = IvrCall::new(&sid(400));
    reference.voice(&client, &url_a).await;
    for answer in QUALIFYING {
        reference.answer(&client, || url_a.clone(), answer).await;
    }
    reference.status(&client, &url_a, "completed", 1).await;
    let one_instance = fields(&stack, &sid(400));
    assert!(
        one_instance.starts_with("qualifie|Marie-Ève Côté|"),
        "{one_instance}"
    );

    // A stores the call, then Supabase goes away; Twilio's retry lands on B, the caller on B.
    let mut call = IvrCall::new(&sid(401));
    call.voice(&client, &url_a).await;
    stack.stop_postgrest();
    call.voice(&client, &url_b).await;
    for answer in QUALIFYING {
        call.answer(&client, || url_b.clone(), answer).await;
    }
    call.status(&client, &url_a, "completed", 1).await;
    assert!(
        outbox_of(&b).depth().await.unwrap() > 0,
        "B queued its writes"
    );

    stack.start_postgrest();
    replayed(&[&a, &b]).await;
    assert_eq!(fields(&stack, &sid(401)), one_instance);
    assert_eq!(
        stack.psql("select count(*) from bp.leads"),
        "2",
        "one lead per call"
    );
    no_orphan_lead(&stack);
    // The console lists the call's one lead.
    let listed = outbox_of(&b).list_leads(10, 0).await.unwrap();
    assert_eq!(listed.len(), 2);
}

/// The requests `proxy` forwarded since `before` for the webhooks a test sent: the instance's
/// background work aside (the alert sender's and the remote eraser's claims, the readiness
/// probe's `select=id&limit=1`). Printed, for a failing count.
fn webhook_requests(proxy: &helpers::delay_proxy::DelayProxy, before: usize) -> Vec<String> {
    let lines: Vec<String> = proxy
        .lines_since(before)
        .into_iter()
        .filter(|line| !line.contains("/rpc/claim_") && !line.contains("select=id&limit=1"))
        .collect();
    eprintln!("requests since {before}: {lines:#?}");
    lines
}

/// The requests a webhook costs at Supabase, counted by a proxy in front of PostgREST: a new call
/// is one (`rpc/start_call`, insert-or-get), an answer one (its conditional save, on the copy the
/// call's previous step left; a retried answer reads), a status report one (`rpc/report_call_status`, which used to be eight). What they
/// write is checked too: the ending report abandons the open lead and completes the call; its
/// replay costs one request and changes nothing; a report after the end keeps the call's final
/// status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_webhook_costs_the_fewest_round_trips_at_supabase() {
    use helpers::delay_proxy::DelayProxy;
    let stack = SupabaseStack::start();
    let proxy = DelayProxy::start(&stack.url).await;
    let app = spawn_app_with(on_supabase_through(&stack, &proxy)).await;
    let client = reqwest::Client::new();
    let sid = sid(900);
    let mut call = IvrCall::new(&sid);
    let cost = |before: usize| webhook_requests(&proxy, before).len();

    let before = proxy.requests();
    let twiml = call.voice(&client, &app.url("")).await;
    assert!(twiml.contains("<Gather"), "{twiml}");
    assert_eq!(cost(before), 1, "a new call: rpc/start_call only");

    let before = proxy.requests();
    call.voice(&client, &app.url("")).await;
    assert_eq!(
        cost(before),
        1,
        "a retried /twilio/voice: the same insert-or-get"
    );

    let mut last_action = String::new();
    for answer in &QUALIFYING[..2] {
        last_action = call.next.clone().expect("a Gather");
        let before = proxy.requests();
        call.answer(&client, || app.url(""), answer).await;
        assert_eq!(
            cost(before),
            1,
            "an answer: its conditional save, on the copy the call's last step left here"
        );
    }
    // Twilio retries the last answer: not the current turn any more, so the lead is read (and
    // nothing is saved).
    let before = proxy.requests();
    let (status, twiml) = helpers::post_form(
        &client,
        &app.url(&last_action),
        &call.answer_fields(QUALIFYING[1]),
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains("<Gather"), "{twiml}");
    assert_eq!(
        cost(before),
        2,
        "a retry: the lead read, and read again under the lock (a decision to save nothing is \
         checked by nothing else), nothing written"
    );

    let lead = |sid: &str| {
        stack.psql(&format!(
            "select l.status || '|' || coalesce(l.nom_complet, '') || '|' || coalesce(c.status, '')
                    || '|' || coalesce(c.duration::text, '')
               from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
        ))
    };
    assert!(
        lead(&sid).starts_with("en_cours|Marie-Ève Côté|"),
        "{}",
        lead(&sid)
    );

    let before = proxy.requests();
    call.status(&client, &app.url(""), "completed", 2).await;
    assert_eq!(
        cost(before),
        1,
        "a status report: rpc/report_call_status only"
    );
    assert_eq!(lead(&sid).trim(), "abandonne|Marie-Ève Côté|completed|60");
    let conversation = stack.psql(&format!(
        "select jsonb_array_length(l.conversation) from bp.calls c join bp.leads l on l.id = c.lead_id
          where c.call_sid = '{sid}'"
    ));
    assert_eq!(
        conversation.trim(),
        "5",
        "the greeting, two answers and two questions, once each"
    );
    let ended = stack.psql(&format!(
        "select count(*) from bp.processed_events where key = 'call-ended:{sid}'"
    ));
    assert_eq!(ended.trim(), "1");

    let before = proxy.requests();
    call.status(&client, &app.url(""), "completed", 2).await;
    assert_eq!(cost(before), 1, "a replayed report: its key, seen");
    let before = proxy.requests();
    call.status(&client, &app.url(""), "ringing", 3).await;
    assert_eq!(cost(before), 1);
    assert_eq!(
        lead(&sid).trim(),
        "abandonne|Marie-Ève Côté|completed|60",
        "a late `ringing` never moves the call back"
    );
    assert_eq!(outbox_of(&app).depth().await.unwrap(), 0);
}

/// A Supabase without `bp.report_call_status` (its migration not applied yet): the report goes
/// step by step, with the same outcome, and the gateway stops asking for the function.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_report_goes_step_by_step_without_the_function() {
    use helpers::delay_proxy::DelayProxy;
    let stack = SupabaseStack::start();
    stack.psql(
        "drop function bp.report_call_status(jsonb, text, boolean, boolean);
         notify pgrst, 'reload schema';",
    );
    let proxy = DelayProxy::start(&stack.url).await;
    let app = spawn_app_with(on_supabase_through(&stack, &proxy)).await;
    let client = reqwest::Client::new();
    let status = |sid: &str| {
        stack.psql(&format!(
            "select l.status || '|' || coalesce(c.status, '')
               from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
        ))
    };
    let mut costs = Vec::new();
    for n in 0..2 {
        let sid = sid(910 + n);
        let mut call = IvrCall::new(&sid);
        call.voice(&client, &app.url("")).await;
        call.answer(&client, || app.url(""), QUALIFYING[0]).await;
        let before = proxy.requests();
        call.status(&client, &app.url(""), "completed", 2).await;
        costs.push(webhook_requests(&proxy, before).len());
        assert_eq!(status(&sid).trim(), "abandonne|completed");
    }
    assert!(
        costs[1] < costs[0] && costs[1] > 1,
        "the missing function is asked for once, then the steps: {costs:?}"
    );
    assert_eq!(outbox_of(&app).depth().await.unwrap(), 0);
}

/// The copy of a lead an instance keeps from a call's last answer is only a guess: the save is
/// conditional on its version. Staff correct the lead on another instance (here straight in
/// Supabase) while the call goes on: the next answer's save finds the copy stale, reads the lead
/// again and applies the answer over the correction, which survives. An answer sent to another
/// instance in between makes the first one's copy behind the call: it reads instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_never_overwrites_what_another_instance_saved_since_its_copy() {
    use helpers::delay_proxy::DelayProxy;
    let stack = SupabaseStack::start();
    let proxy = DelayProxy::start(&stack.url).await;
    let a = spawn_app_with(on_supabase_through(&stack, &proxy)).await;
    let b = spawn_app_with(on_supabase(&stack)).await;
    let client = reqwest::Client::new();
    let sid = sid(920);
    let mut call = IvrCall::new(&sid);
    let lead = || {
        stack.psql(&format!(
            "select coalesce(l.nom_complet, '') || '|' || coalesce(l.telephone, '') || '|'
                    || coalesce(l.adresse_complete, '') || '|' || coalesce(l.description, '')
                    || '|' || jsonb_array_length(l.conversation)
               from bp.calls c join bp.leads l on l.id = c.lead_id where c.call_sid = '{sid}'"
        ))
    };
    call.voice(&client, &a.url("")).await;
    call.answer(&client, || a.url(""), QUALIFYING[0]).await;
    // Staff write a note in the description meanwhile (the version moves on).
    stack.psql(&format!(
        "update bp.leads set description = 'Client connu, voir dossier 2019'
          where id = (select lead_id from bp.calls where call_sid = '{sid}')"
    ));
    let before = proxy.requests();
    call.answer(&client, || a.url(""), QUALIFYING[1]).await;
    assert_eq!(
        webhook_requests(&proxy, before).len(),
        3,
        "the save on the copy (stale), the lead read, the save"
    );
    assert_eq!(
        lead().trim(),
        "Marie-Ève Côté|+15145550199||Client connu, voir dossier 2019|5"
    );
    // The next answer goes to B; then A gets the one after: its copy is behind the call.
    call.answer(&client, || b.url(""), QUALIFYING[2]).await;
    let before = proxy.requests();
    call.answer(&client, || a.url(""), QUALIFYING[3]).await;
    assert_eq!(
        webhook_requests(&proxy, before).len(),
        2,
        "the lead read, then saved"
    );
    let now = lead();
    assert!(
        now.contains("|Client connu, voir dossier 2019|9"),
        "every answer once, the note kept: {now}"
    );
    assert!(
        !now.split('|').nth(2).unwrap_or_default().is_empty(),
        "the address B took is kept: {now}"
    );
}
