//! Erasure on Supabase, on a real PostgreSQL + PostgREST: `bp.erase_caller` erases in one
//! transaction (a failure half-way leaves everything as it was) and answers what it removed and
//! what is owed at Twilio and Vapi; the number is kept hashed only; a late insert of an erased lead
//! is refused; writes another instance queued before the erasure are dropped when its outbox
//! replays them (counted, not dead-lettered), while a new call from the number after it is a new
//! caller's.

mod helpers;

use std::time::Duration;

use helpers::console::plant_lead;
use helpers::fake_twilio::{ACCOUNT, FakeTwilio, TOKEN};
use helpers::fake_vapi::{Behaviour, FakeVapi};
use helpers::supabase::SupabaseStack;
use myriam::domain::{CallSid, LeadId, PhoneNumber};
use myriam::erasure::RemoteEraser;
use myriam::qualification::Lead;
use myriam::store::console::ConsoleStore;
use myriam::store::erasures::number_key;
use myriam::store::outbox::{OutboxConfig, OutboxStore};
use myriam::store::sqlite::SqliteStore;
use myriam::store::supabase::SupabaseStore;
use myriam::store::{
    AlertEvent, AlertOutcome, Alerts, AnyStore, CallUpdate, LeadRow, NewAlert, RemoteService,
    Store, WriteOp,
};
use myriam::twilio::rest::TwilioRest;
use myriam::vapi::client::VapiRest;
use secrecy::SecretString;

const PHONE: &str = "+15145550101";
const RECORDING: &str = "RE0123456789abcdef0123456789abcd01";
const MESSAGE: &str = "SM0123456789abcdef0123456789abcd01";

fn supabase(stack: &SupabaseStack) -> SupabaseStore {
    SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.service_key.clone()),
        "bp",
        Duration::from_secs(5),
    )
}

fn sid(n: u32) -> CallSid {
    CallSid::try_from(format!("CA{n:032x}").as_str()).unwrap()
}

/// A lead of `PHONE` with a call (recording, Vapi id), a processed event and a sent alert.
async fn plant_caller(store: &SupabaseStore) -> Lead {
    let lead = plant_lead(
        store,
        "Gédéon Papineau",
        PHONE,
        "2761 rue des Érables",
        true,
    )
    .await;
    let mut call = CallUpdate::new(sid(1));
    call.lead_id = Some(lead.id);
    call.from_number = Some(PHONE.to_owned());
    call.vapi_call_id = Some("vapi-call-sb-1".to_owned());
    call.recording_sid = Some(RECORDING.to_owned());
    store.upsert_call(&call).await.unwrap();
    assert!(
        store
            .record_event(&format!("twilio:{}:status:completed", sid(1)))
            .await
            .unwrap()
    );
    let saved = store.get_lead(lead.id).await.unwrap().unwrap();
    store
        .save_lead_with_alerts(
            &saved,
            &[NewAlert::new(
                lead.id,
                AlertEvent::Qualified,
                "+14385550102",
            )],
        )
        .await
        .unwrap();
    let claimed = store
        .claim_due_alerts(Duration::from_secs(30), 10)
        .await
        .unwrap();
    store
        .finish_alert(
            claimed[0].id,
            &AlertOutcome::Sent {
                message_sid: MESSAGE.to_owned(),
                status: "queued".to_owned(),
            },
        )
        .await
        .unwrap();
    lead
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one erasure read top to bottom: refused, done, carried out
async fn supabase_erases_a_caller_in_one_transaction() {
    let stack = SupabaseStack::start();
    let store = supabase(&stack);
    let lead = plant_caller(&store).await;
    let phone = PhoneNumber::try_from(PHONE).unwrap();

    // A failure half-way (the leads' delete, after the calls' and the events') leaves everything.
    stack.psql(
        "create function bp.test_block() returns trigger language plpgsql as \
         $$ begin raise exception 'blocked for the test'; end $$; \
         create trigger test_block before delete on bp.leads \
         for each row execute function bp.test_block();",
    );
    assert!(store.erase_caller(&phone).await.is_err());
    assert_eq!(
        stack.psql(
            "select (select count(*) from bp.leads) || ',' || (select count(*) from bp.calls) \
             || ',' || (select count(*) from bp.processed_events) || ',' || \
             (select count(*) from bp.alerts) || ',' || (select count(*) from bp.remote_erasures) \
             || ',' || (select count(*) from bp.erased)"
        ),
        "1,1,1,1,0,0",
        "nothing erased, nothing recorded"
    );
    stack.psql("drop trigger test_block on bp.leads; drop function bp.test_block();");

    let erasure = store.erase_caller(&phone).await.unwrap();
    assert_eq!(erasure.lead_ids, vec![lead.id]);
    assert_eq!((erasure.calls, erasure.events), (1, 1));
    assert_eq!((erasure.alerts, erasure.sms_sent), (1, 1));
    let mut remote: Vec<(RemoteService, &str)> = erasure
        .remote
        .iter()
        .map(|t| (t.service, t.remote_id.as_str()))
        .collect();
    remote.sort();
    let call_sid = sid(1).to_string();
    let mut expected = vec![
        (RemoteService::TwilioRecording, RECORDING),
        (RemoteService::TwilioCall, call_sid.as_str()),
        (RemoteService::TwilioMessage, MESSAGE),
        (RemoteService::VapiCall, "vapi-call-sb-1"),
    ];
    expected.sort();
    assert_eq!(remote, expected);
    assert_eq!(
        stack.psql(
            "select (select count(*) from bp.leads) || ',' || (select count(*) from bp.calls) \
             || ',' || (select count(*) from bp.processed_events) || ',' || \
             (select count(*) from bp.alerts) || ',' || \
             (select count(*) from bp.remote_erasures where status = 'pending') || ',' || \
             (select count(*) from bp.erased)"
        ),
        "0,0,0,0,4,3",
        "rows gone; four remote deletions owed; the number, the lead and the call tombstoned"
    );
    // The number is kept hashed, never in clear, and the same hash as the gateway's.
    assert_eq!(
        stack.psql(&format!(
            "select count(*) from bp.erased where key = '{}'",
            number_key(PHONE)
        )),
        "1"
    );
    assert_eq!(
        stack.psql("select count(*) from bp.erased where key like '%5145550101%'"),
        "0"
    );
    // A late insert of the erased lead is refused as erased.
    let late = store.save_lead(&lead).await;
    assert!(matches!(late, Err(ref e) if e.is_erased()), "{late:?}");
    assert_eq!(stack.psql("select count(*) from bp.leads"), "0");

    // Two instances carry the deletions out at once: each DELETE is sent once.
    let twilio = FakeTwilio::start().await;
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let eraser = |n: u32| {
        RemoteEraser::new(
            AnyStore::Supabase(OutboxStore::new(
                supabase(&stack),
                SqliteStore::open(&dir.path().join(format!("i{n}.db"))).unwrap(),
                OutboxConfig::default(),
            )),
            Some(TwilioRest::new(
                url::Url::parse(&twilio.base_url()).unwrap(),
                ACCOUNT.to_owned(),
                SecretString::from(TOKEN.to_owned()),
                Duration::from_secs(5),
            )),
            Some(VapiRest::new(
                &vapi.base,
                SecretString::from("vapi-key".to_owned()),
                Duration::from_secs(5),
            )),
        )
    };
    let (one, two) = (eraser(1), eraser(2));
    let (a, b) = tokio::join!(one.round(None), two.round(None));
    assert_eq!(a.unwrap() + b.unwrap(), 4, "every row claimed once");
    let mut twilio_sids: Vec<(String, u16)> = twilio
        .deletions()
        .into_iter()
        .map(|d| (d.sid, d.status))
        .collect();
    twilio_sids.sort();
    let mut expected = vec![
        (call_sid.clone(), 204),
        (MESSAGE.to_owned(), 204),
        (RECORDING.to_owned(), 204),
    ];
    expected.sort();
    assert_eq!(twilio_sids, expected);
    assert_eq!(vapi.deletions().len(), 1);
    assert_eq!(
        stack.psql("select string_agg(distinct status, ',') from bp.remote_erasures"),
        "done"
    );
}

/// Queues `op` in the outbox file at `path` as if it had been queued `age` ago.
fn queue(path: &std::path::Path, op: &WriteOp, age: Duration) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let at = time::OffsetDateTime::now_utc() - age;
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    conn.execute(
        "INSERT INTO outbox (entity, op, enqueued_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![op.entity(), serde_json::to_string(op).unwrap(), at],
    )
    .unwrap();
}

#[tokio::test]
async fn a_replayed_outbox_write_does_not_bring_the_caller_back() {
    let stack = SupabaseStack::start();
    let direct = supabase(&stack);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.db");
    // Instance B, whose writes were queued while Supabase was out of its reach.
    let b = OutboxStore::new(
        supabase(&stack),
        SqliteStore::open(&file).unwrap(),
        OutboxConfig::default(),
    );
    let lead = plant_lead(
        &direct,
        "Gédéon Papineau",
        PHONE,
        "2761 rue des Érables",
        true,
    )
    .await;
    let minute = Duration::from_secs(60);
    // The lead's creation, queued by B too (its first answer lost), and a call B started whose
    // lead Supabase never saw.
    queue(&file, &WriteOp::SaveLead(LeadRow::from(&lead)), minute);
    let unseen =
        Lead::new(LeadId::new()).with_offered_phone(Some(PhoneNumber::try_from(PHONE).unwrap()));
    let mut call = CallUpdate::new(sid(2));
    call.from_number = Some(PHONE.to_owned());
    call.lead_id = Some(unseen.id);
    queue(
        &file,
        &WriteOp::StartCall {
            lead: LeadRow::from(&unseen),
            call: Box::new(call.clone()),
        },
        minute,
    );
    queue(
        &file,
        &WriteOp::AbandonCallLead { call_sid: sid(2) },
        minute,
    );

    // Instance A erases the caller.
    direct
        .erase_caller(&PhoneNumber::try_from(PHONE).unwrap())
        .await
        .unwrap();
    // After the erasure, the same number calls again: a new caller.
    let again =
        Lead::new(LeadId::new()).with_offered_phone(Some(PhoneNumber::try_from(PHONE).unwrap()));
    let mut new_call = CallUpdate::new(sid(3));
    new_call.from_number = Some(PHONE.to_owned());
    queue(
        &file,
        &WriteOp::StartCall {
            lead: LeadRow::from(&again),
            call: Box::new(new_call),
        },
        Duration::ZERO,
    );

    assert_eq!(b.flush(Duration::from_secs(20)).await.unwrap(), 0);
    assert!(
        b.dead_letters().await.unwrap().is_empty(),
        "nothing left for staff to handle"
    );
    let leads = stack.psql(&format!(
        "select coalesce(string_agg(id::text, ','), '') from bp.leads \
         where telephone = '{PHONE}' or offered_phone = '{PHONE}'"
    ));
    assert_eq!(leads, again.id.to_string(), "only the new caller's lead");
    assert_eq!(
        stack.psql(&format!(
            "select count(*) from bp.calls where call_sid in ('{}', '{}')",
            sid(1),
            sid(2)
        )),
        "0"
    );
}
