//! The same store suite against `SqliteStore`, `SupabaseStore` (real PostgREST + PostgreSQL) and
//! `OutboxStore`; then the outbox under faults, dead letters, and crashes.

mod helpers;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use helpers::store_suite::{alerts_suite, full_lead, insert, sid, suite};
use helpers::supabase::SupabaseStack;
use myriam::domain::LeadId;
use myriam::qualification::{Description, Lead, machine};
use myriam::store::outbox::{OutboxConfig, OutboxStore};
use myriam::store::sqlite::SqliteStore;
use myriam::store::supabase::SupabaseStore;
use myriam::store::{AlertEvent, Alerts, CallUpdate, NewAlert, Saved, Store, StoreError};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::test]
async fn sqlite_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("nested/dir/myriam.db")).unwrap();
    suite(&store).await;
}

fn supabase(stack: &SupabaseStack, timeout: Duration) -> SupabaseStore {
    SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.service_key.clone()),
        "bp",
        timeout,
    )
}

#[tokio::test]
async fn supabase_store_passes_the_suite_on_real_postgrest() {
    let stack = SupabaseStack::start();
    suite(&supabase(&stack, Duration::from_secs(5))).await;
    // What PostgREST wrote is what PostgreSQL holds.
    assert_eq!(stack.psql("select count(*) from bp.leads"), "9");
    assert_eq!(
        stack.psql("select status || ' ' || duration from bp.calls where call_sid = 'CA00000000000000000000000000000001'"),
        "completed 42"
    );
}

#[tokio::test]
async fn outbox_store_passes_the_suite_when_supabase_is_up() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_secs(5)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        OutboxConfig::default(),
    );
    suite(&store).await;
    assert_eq!(store.depth().await.unwrap(), 0, "nothing had to be queued");
}

#[tokio::test]
async fn sqlite_store_keeps_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("alerts.db")).unwrap();
    alerts_suite(&store).await;
}

#[tokio::test]
async fn supabase_store_keeps_alerts_on_real_postgrest() {
    let stack = SupabaseStack::start();
    alerts_suite(&supabase(&stack, Duration::from_secs(5))).await;
    // What PostgREST wrote is what PostgreSQL holds.
    assert_eq!(
        stack.psql(
            "select string_agg(status || ':' || attempts, ',' order by status) from bp.alerts"
        ),
        "claimed:2,dead:2,sent:1"
    );
}

#[tokio::test]
async fn outbox_store_keeps_alerts_and_queues_them_with_their_lead() {
    let mut stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_millis(500)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        fast(),
    );
    alerts_suite(&store).await;
    assert_eq!(store.depth().await.unwrap(), 0);

    // Supabase down: the qualifying write and its alert are acknowledged, queued as one write,
    // and reach Supabase together once it is back.
    let mut lead = full_lead();
    insert(&store, &lead).await;
    stack.stop_postgrest();
    lead.version = 1;
    lead.description = None;
    let alert = NewAlert::new(lead.id, AlertEvent::Qualified, "+15145550109");
    assert_eq!(
        store.save_lead_with_alerts(&lead, &[alert]).await.unwrap(),
        Saved::Applied
    );
    assert_eq!(store.depth().await.unwrap(), 1);
    assert_eq!(
        store.get_lead(lead.id).await.unwrap().unwrap().description,
        None
    );
    stack.start_postgrest();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    store.spawn_worker(&tracker, token.clone());
    wait_for_depth(&store, 0).await;
    token.cancel();
    let alerts = store.alerts_of_lead(lead.id).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].recipient, "+15145550109");
    assert_eq!(
        stack.psql(&format!(
            "select description is null from bp.leads where id = '{}'",
            lead.id
        )),
        "t"
    );
}

#[tokio::test]
async fn supabase_errors_carry_postgrest_codes() {
    let stack = SupabaseStack::start();
    let wrong_key = SupabaseStore::new(
        &stack.url,
        &SecretString::from("not-a-known-key".to_owned()),
        "bp",
        Duration::from_secs(5),
    );
    let err = wrong_key.health().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());

    let anon = SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.anon_key.clone()),
        "bp",
        Duration::from_secs(5),
    );
    let err = anon.save_lead(&full_lead()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { status: 401, code, .. } if code == "42501"),
        "anon has no access: {err:?}"
    );

    let wrong_schema = SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.service_key.clone()),
        "public_nope",
        Duration::from_secs(5),
    );
    let err = wrong_schema.health().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { status: 406, code, .. } if code == "PGRST106"),
        "{err:?}"
    );
}

async fn wait_for_depth(store: &OutboxStore, depth: usize) {
    let started = Instant::now();
    while store.depth().await.unwrap() != depth {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "outbox stuck (wanted {depth}): {:?}",
            store.pending_summary().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fast() -> OutboxConfig {
    OutboxConfig {
        write_deadline: Duration::from_millis(500),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    }
}

#[tokio::test]
async fn writes_survive_supabase_going_down_and_drain_in_order() {
    let mut stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_millis(500)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        fast(),
    );
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();

    let mut lead = Lead::new(LeadId::new());
    insert(&store, &lead).await;
    assert_eq!(store.depth().await.unwrap(), 0);

    stack.stop_postgrest();
    // Every write is still acknowledged, and durable in the outbox.
    let mut acknowledged = Vec::new();
    for (i, answer) in ["Jean Tremblay", "514 555 1234", "12 rue des Érables, Laval"]
        .iter()
        .enumerate()
    {
        // What a call path does: read (pending writes included), apply, write.
        let mut current = store.get_lead(lead.id).await.unwrap().unwrap();
        let outcome = machine::process_response(&mut current, answer, &[]);
        assert_eq!(store.save_lead(&current).await.unwrap(), Saved::Applied);
        assert!(outcome.success, "{answer}: {outcome:?}");
        let mut update = CallUpdate::new(sid(7));
        update.lead_id = Some(lead.id);
        update.status = Some(format!("step-{i}"));
        store.upsert_call(&update).await.unwrap();
        acknowledged.push(outcome);
    }
    assert!(store.record_event("evt-down").await.unwrap());
    assert!(
        !store.record_event("evt-down").await.unwrap(),
        "pending events count"
    );
    assert_eq!(store.depth().await.unwrap(), 7);
    assert!(store.oldest_age().await.unwrap().is_some());
    // Reads see the pending writes.
    lead = store.get_lead(lead.id).await.unwrap().unwrap();
    assert_eq!(
        lead.adresse_complete.as_ref().unwrap().as_str(),
        "12 rue des Érables, Laval"
    );
    assert_eq!(
        store
            .get_call(&sid(7))
            .await
            .unwrap()
            .unwrap()
            .fields
            .status
            .as_deref(),
        Some("step-2")
    );
    assert_eq!(
        store.find_lead_by_call(&sid(7)).await.unwrap().unwrap().id,
        lead.id
    );
    // Reads of things nobody wrote are answered (not errors) while Supabase is down: a new call
    // must still get its first question.
    assert_eq!(store.find_lead_by_call(&sid(70)).await.unwrap(), None);
    assert!(!store.event_processed("never-seen").await.unwrap());

    // Supabase comes back: the worker drains in order.
    store.spawn_worker(&tracker, token.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.start_postgrest();
    wait_for_depth(&store, 0).await;
    token.cancel();
    tracker.close();
    tracker.wait().await;

    assert_eq!(
        stack.psql("select nom_complet || '|' || telephone || '|' || adresse_complete || '|' || status from bp.leads"),
        "Jean Tremblay|+15145551234|12 rue des Érables, Laval|en_cours"
    );
    assert_eq!(
        stack.psql("select count(*) || ' ' || status from bp.calls group by status"),
        "1 step-2"
    );
    assert_eq!(stack.psql("select count(*) from bp.processed_events"), "1");
    let stored = store.get_lead(lead.id).await.unwrap().unwrap();
    assert_eq!(
        stored.conversation.len(),
        6,
        "every answer and reply, none doubled"
    );
    assert_eq!(
        acknowledged
            .last()
            .unwrap()
            .lead_data
            .as_ref()
            .unwrap()
            .adresse_complete
            .as_deref(),
        Some("12 rue des Érables, Laval")
    );
}

#[tokio::test]
async fn a_permanently_refused_write_goes_to_dead_letters_and_can_be_requeued() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_secs(2)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        fast(),
    );
    // A write Supabase refuses as invalid (a CHECK constraint, 400): acknowledged (kept
    // locally), never retried forever.
    let mut invalid = CallUpdate::new(sid(50));
    invalid.dial_status = Some("bogus".to_owned());
    store.upsert_call(&invalid).await.unwrap();
    assert_eq!(store.depth().await.unwrap(), 0);
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("23514"), "{}", dead[0].error);
    assert!(!store.refusing(), "an invalid write is not a refusal");

    // A queued write refused on replay is dead-lettered too, and the queue moves on.
    let mut stack = stack;
    stack.stop_postgrest();
    let mut queued = CallUpdate::new(sid(51));
    queued.dial_status = Some("bogus".to_owned());
    store.upsert_call(&queued).await.unwrap();
    let lead = Lead::new(LeadId::new());
    insert(&store, &lead).await;
    assert_eq!(store.depth().await.unwrap(), 2);
    stack.start_postgrest();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    store.spawn_worker(&tracker, token.clone());
    wait_for_depth(&store, 0).await;
    assert_eq!(store.dead_letters().await.unwrap().len(), 2);
    assert_eq!(
        stack.psql("select count(*) from bp.leads"),
        "1",
        "the lead behind it landed"
    );

    // Fixed (here: the constraint relaxed): requeue and drain.
    stack.psql("alter table bp.calls drop constraint calls_dial_status_check");
    assert_eq!(store.requeue_dead_letters().await.unwrap(), 2);
    wait_for_depth(&store, 0).await;
    token.cancel();
    assert!(store.dead_letters().await.unwrap().is_empty());
    assert_eq!(
        stack.psql(
            "select string_agg(call_sid || ':' || dial_status, ',' order by call_sid) from bp.calls"
        ),
        format!("{}:bogus,{}:bogus", sid(50), sid(51))
    );
}

/// A revoked grant (or a rotated key, a dropped table): Supabase answers 403 to every write. The
/// instance keeps the writes queued (not dead-lettered one by one), reports itself refused
/// (`/readyz` unready, `myriam_supabase_refusing`), and drains once the grant is back.
#[tokio::test]
async fn a_revoked_grant_keeps_writes_queued_and_the_instance_refused_until_fixed() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_secs(2)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        fast(),
    );
    stack.psql("revoke insert, update on bp.leads from service_role");
    let lead = Lead::new(LeadId::new());
    insert(&store, &lead).await;
    assert!(store.dead_letters().await.unwrap().is_empty());
    assert_eq!(store.depth().await.unwrap(), 1);
    assert!(store.refusing());
    let readiness = myriam::store::AnyStore::Supabase(store.clone())
        .readiness(Duration::from_secs(300))
        .await;
    assert!(!readiness.ready(), "refused: unready");
    assert!(readiness.supabase.as_ref().unwrap().refusing);

    // A lead not readable either (select revoked): the health read says so too.
    stack.psql("revoke select on bp.leads from service_role");
    assert!(store.remote_health().await.is_err());
    stack.psql("grant select, insert, update on bp.leads to service_role");
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    store.spawn_worker(&tracker, token.clone());
    wait_for_depth(&store, 0).await;
    token.cancel();
    assert!(store.remote_health().await.is_ok());
    assert!(!store.refusing(), "writes go through again");
    assert!(store.dead_letters().await.unwrap().is_empty());
    assert_eq!(
        stack.psql(&format!(
            "select version from bp.leads where id = '{}'",
            lead.id
        )),
        "1"
    );
}

#[tokio::test]
async fn a_write_that_keeps_conflicting_is_dead_lettered_instead_of_blocking_the_queue() {
    let mut stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_millis(500)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        OutboxConfig {
            write_deadline: Duration::from_millis(500),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
    );
    stack.stop_postgrest();
    // A call whose lead never reaches Supabase: 409 (foreign key) on every replay.
    let mut orphan = CallUpdate::new(sid(40));
    orphan.lead_id = Some(LeadId::new());
    store.upsert_call(&orphan).await.unwrap();
    let behind = Lead::new(LeadId::new());
    insert(&store, &behind).await;
    stack.start_postgrest();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    store.spawn_worker(&tracker, token.clone());
    wait_for_depth(&store, 0).await;
    token.cancel();
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("409"), "{}", dead[0].error);
    assert_eq!(
        dead[0].attempts,
        myriam::store::outbox::MAX_CONFLICT_ATTEMPTS
    );
    assert_eq!(
        stack.psql("select count(*) from bp.leads"),
        "1",
        "the write behind it landed"
    );
}

#[tokio::test]
async fn shutdown_flush_replays_what_it_can() {
    let mut stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack, Duration::from_millis(500)),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        fast(),
    );
    stack.stop_postgrest();
    insert(&store, &Lead::new(LeadId::new())).await;
    assert_eq!(
        store.flush(Duration::from_millis(300)).await.unwrap(),
        1,
        "still down"
    );
    stack.start_postgrest();
    assert_eq!(store.flush(Duration::from_secs(5)).await.unwrap(), 0);
    assert_eq!(stack.psql("select count(*) from bp.leads"), "1");
}

/// Child half of the crash tests: acknowledges writes and prints each id, until killed.
#[tokio::test]
async fn crash_child() {
    let Ok(db) = std::env::var("MYRIAM_CRASH_DB") else {
        return; // Only runs when a crash test starts it.
    };
    let local = SqliteStore::open(Path::new(&db)).unwrap();
    let outbox = std::env::var("MYRIAM_CRASH_SUPABASE_URL").ok().map(|url| {
        OutboxStore::new(
            SupabaseStore::new(
                &url,
                &SecretString::from("key".to_owned()),
                "bp",
                Duration::from_millis(200),
            ),
            local.clone(),
            fast(),
        )
    });
    for i in 0.. {
        let mut lead = Lead::new(LeadId::new());
        lead.description = Some(Description::try_from(format!("crash lead {i}").as_str()).unwrap());
        match &outbox {
            Some(o) => insert(o, &lead).await,
            None => insert(&local, &lead).await,
        }
        println!("acked {}", lead.id);
    }
}

/// Starts `crash_child`, lets it acknowledge some writes, SIGKILLs it; returns the acknowledged ids.
fn crash(db: &Path, supabase_url: Option<&str>) -> Vec<LeadId> {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("MYRIAM_CRASH_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = supabase_url {
        cmd.env("MYRIAM_CRASH_SUPABASE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut acked = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("acked ") {
            acked.push(LeadId::try_from(id).unwrap());
            if acked.len() == 25 {
                // SIGKILL: no destructor, no flush.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 25);
    acked
}

#[tokio::test]
async fn sqlite_keeps_every_acknowledged_write_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let acked = crash(&db, None);
    let store = SqliteStore::open(&db).unwrap();
    for id in acked {
        assert!(store.get_lead(id).await.unwrap().is_some(), "lost {id}");
    }
}

#[tokio::test]
async fn the_outbox_keeps_every_acknowledged_write_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash-outbox.db");
    // Nothing listens there: every write is queued.
    let acked = crash(&db, Some("http://127.0.0.1:9"));
    let store = OutboxStore::new(
        SupabaseStore::new(
            "http://127.0.0.1:9",
            &SecretString::from("key".to_owned()),
            "bp",
            Duration::from_millis(100),
        ),
        SqliteStore::open(&db).unwrap(),
        fast(),
    );
    assert!(store.depth().await.unwrap() >= acked.len());
    for id in acked {
        assert!(store.get_lead(id).await.unwrap().is_some(), "lost {id}");
    }
}

#[test]
fn store_selection_follows_store_and_the_supabase_settings() {
    use myriam::config::{Settings, StoreKind};
    use myriam::store::{AnyStore, OpenError};
    let mut settings = Settings::for_tests();
    assert_eq!(
        AnyStore::open(&settings).unwrap().kind(),
        "sqlite",
        "auto without Supabase"
    );
    settings.store.kind = StoreKind::Supabase;
    assert!(matches!(
        AnyStore::open(&settings),
        Err(OpenError::SupabaseNotConfigured)
    ));
    settings.store.supabase_url = Some("https://bp.supabase.test".parse().unwrap());
    settings.store.supabase_service_role_key = Some(SecretString::from("sb_secret_k".to_owned()));
    assert_eq!(AnyStore::open(&settings).unwrap().kind(), "supabase");
    settings.store.kind = StoreKind::Auto;
    assert_eq!(
        AnyStore::open(&settings).unwrap().kind(),
        "supabase",
        "auto with Supabase"
    );
    settings.store.kind = StoreKind::Sqlite;
    assert_eq!(
        AnyStore::open(&settings).unwrap().kind(),
        "sqlite",
        "forced"
    );
}

/// Every call status the tests move between: the known ones, `queued` and one Twilio may add.
fn call_statuses() -> Vec<&'static str> {
    myriam::domain::CALL_STATUS_RANKS
        .iter()
        .map(|(status, _)| *status)
        .chain(["queued", "something-new"])
        .collect()
}

/// `'a','b',…`: statuses as an SQL array's elements.
fn quoted(all: &[&str]) -> String {
    all.iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What a call's status is after `from` is reported then `to`: the Rust order
/// (`calls::status_rank`).
fn call_status_after<'a>(from: &'a str, to: &'a str) -> &'a str {
    if myriam::calls::status_rank(to) >= myriam::calls::status_rank(from) {
        to
    } else {
        from
    }
}

/// SQLite's copies of the orders (migration 3's trigger and the statuses its CHECK allows, the
/// call `CASE` built from `CALL_STATUS_RANKS`) agree with `LeadStatus::can_become` and
/// `calls::status_rank` for every pair of statuses, tried through the real database.
#[tokio::test]
async fn sqlite_status_orders_match_the_rust_ones() {
    use myriam::domain::LeadStatus;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut n = 0u32;
    for from in LeadStatus::ALL {
        for to in LeadStatus::ALL {
            let id = LeadId::new().to_string();
            conn.execute(
                "INSERT INTO leads (id, status) VALUES (?1, ?2)",
                [&id, from.as_str()],
            )
            .unwrap_or_else(|e| panic!("{from} is not a status SQLite accepts: {e}"));
            let moved = conn.execute(
                "UPDATE leads SET status = ?2 WHERE id = ?1",
                [&id, to.as_str()],
            );
            assert_eq!(
                moved.is_ok(),
                from.can_become(to),
                "SQLite {from} → {to}: {moved:?}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 36);
    assert!(
        conn.execute(
            "INSERT INTO leads (id, status) VALUES (?1, 'perdu')",
            [LeadId::new().to_string()],
        )
        .is_err(),
        "SQLite accepts exactly LeadStatus::ALL"
    );
    for (i, from) in call_statuses().into_iter().enumerate() {
        for (j, to) in call_statuses().into_iter().enumerate() {
            let sid = sid(9000 + u32::try_from(i * 100 + j).unwrap());
            for status in [from, to] {
                let mut update = CallUpdate::new(sid.clone());
                update.status = Some(status.to_owned());
                store.upsert_call(&update).await.unwrap();
            }
            let stored = store.get_call(&sid).await.unwrap().unwrap().fields.status;
            assert_eq!(
                stored.as_deref(),
                Some(call_status_after(from, to)),
                "SQLite call {from} → {to}"
            );
        }
    }
}

/// Supabase's copies (`bp.lead_status_rank`, `bp.leads_forward`, the status CHECK) agree with
/// `LeadStatus::rank`/`can_become` for every status and every pair, tried in the real PostgreSQL.
#[tokio::test]
async fn supabase_status_orders_match_the_rust_ones() {
    use myriam::domain::LeadStatus;
    let stack = SupabaseStack::start();
    for status in LeadStatus::ALL {
        assert_eq!(
            stack.psql(&format!("select bp.lead_status_rank('{status}')")),
            status.rank().to_string(),
            "bp.lead_status_rank('{status}')"
        );
    }
    let leads: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
    // Every pair in one round trip: insert at `f`, update to `t`, record whether the database
    // let it through (`bp.leads_forward` raises 23514 otherwise).
    let outcome = stack.psql(&format!(
        "create temp table moved (f text, t text, ok boolean);
         do $$
         declare f text; t text; v uuid;
         begin
           foreach f in array array[{lead_list}] loop
             foreach t in array array[{lead_list}] loop
               begin
                 insert into bp.leads (status) values (f) returning id into v;
                 update bp.leads set status = t where id = v;
                 insert into moved values (f, t, true);
               exception when check_violation then
                 insert into moved values (f, t, false);
               end;
             end loop;
           end loop;
         end $$;
         select f || '>' || t || '=' || ok from moved order by f, t;",
        lead_list = quoted(&leads)
    ));
    let mut expected: Vec<String> = LeadStatus::ALL
        .iter()
        .flat_map(|f| {
            LeadStatus::ALL
                .iter()
                .map(move |t| format!("{f}>{t}={}", f.can_become(*t)))
        })
        .collect();
    expected.sort();
    // psql prints the command tags of the statements before the last one's rows.
    let mut got: Vec<String> = outcome
        .lines()
        .filter(|l| l.contains('>'))
        .map(str::to_owned)
        .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "bp.leads_forward against LeadStatus::can_become"
    );
    assert!(
        stack
            .psql(
                "do $$ begin insert into bp.leads (status) values ('perdu');
                 exception when check_violation then raise notice 'refused'; return; end $$;
                 select count(*) from bp.leads where status = 'perdu'"
            )
            .ends_with('0'),
        "Supabase accepts exactly LeadStatus::ALL"
    );
}

/// `bp.call_status_rank` and `bp.calls_forward` agree with `CALL_STATUS_RANKS` for every status and
/// every pair of statuses, tried in the real PostgreSQL.
#[tokio::test]
async fn supabase_call_status_order_matches_the_rust_one() {
    use myriam::domain::CALL_STATUS_RANKS;
    let stack = SupabaseStack::start();
    for status in call_statuses() {
        let rank = CALL_STATUS_RANKS
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, r)| *r);
        assert_eq!(
            stack.psql(&format!("select bp.call_status_rank('{status}')")),
            rank.to_string(),
            "bp.call_status_rank('{status}')"
        );
    }
    let calls = call_statuses();
    let outcome = stack.psql(&format!(
        "create temp table moved (f text, t text, after text);
         do $$
         declare f text; t text; n integer := 0;
         begin
           foreach f in array array[{call_list}] loop
             foreach t in array array[{call_list}] loop
               n := n + 1;
               insert into bp.calls (call_sid, status) values ('CAorder' || n, f);
               update bp.calls set status = t where call_sid = 'CAorder' || n;
               insert into moved
                 select f, t, status from bp.calls where call_sid = 'CAorder' || n;
             end loop;
           end loop;
         end $$;
         select f || '>' || t || '=' || after from moved;",
        call_list = quoted(&calls)
    ));
    let mut expected: Vec<String> = calls
        .iter()
        .flat_map(|f| {
            calls
                .iter()
                .map(move |t| format!("{f}>{t}={}", call_status_after(f, t)))
        })
        .collect();
    expected.sort();
    // psql prints the command tags of the statements before the last one's rows.
    let mut got: Vec<String> = outcome
        .lines()
        .filter(|l| l.contains('>'))
        .map(str::to_owned)
        .collect();
    got.sort();
    assert_eq!(got, expected, "bp.calls_forward against calls::status_rank");
}

/// The recordings migration (SQLite): a database from before it keeps its Twilio voicemails in
/// `recording_url`, and a Vapi recording stored there by the previous code moves to
/// `vapi_recording_url`.
#[tokio::test]
async fn the_recordings_migration_moves_vapi_urls_out_of_the_voicemail_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("before-recordings.db");
    drop(SqliteStore::open(&path).unwrap());
    // Back to the schema before the migration, with rows the previous code wrote.
    let twilio = "https://api.twilio.com/2010-04-01/Accounts/AC0123/Recordings/RE0123456789abcdef0123456789abcdef";
    let vapi = "https://storage.vapi.ai/0199-call-mono.wav";
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE calls DROP COLUMN vapi_recording_url;
             ALTER TABLE calls DROP COLUMN vapi_summary;
             ALTER TABLE calls DROP COLUMN vapi_structured_data;
             ALTER TABLE calls DROP COLUMN vapi_turns;
             DROP INDEX calls_operator;
             ALTER TABLE calls DROP COLUMN operator;
             ALTER TABLE operators DROP COLUMN phone;
             DROP TRIGGER leads_not_erased;
             DROP TABLE erased;
             DROP TABLE remote_erasures;
             DELETE FROM schema_version WHERE version >= 8;",
        )
        .unwrap();
        for (n, url) in [(1, Some(twilio)), (2, Some(vapi)), (3, None)] {
            conn.execute(
                "INSERT INTO calls (id, call_sid, recording_url) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    uuid::Uuid::new_v4().to_string(),
                    sid(7700 + n).as_str(),
                    url
                ],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let call = |n: u32| {
        let store = store.clone();
        async move {
            store
                .get_call(&sid(7700 + n))
                .await
                .unwrap()
                .unwrap()
                .fields
        }
    };
    let kept = call(1).await;
    assert_eq!(kept.recording_url.as_deref(), Some(twilio));
    assert_eq!(kept.vapi_recording_url, None);
    let moved = call(2).await;
    assert_eq!(moved.recording_url, None);
    assert_eq!(moved.vapi_recording_url.as_deref(), Some(vapi));
    let none = call(3).await;
    assert_eq!((none.recording_url, none.vapi_recording_url), (None, None));
}
