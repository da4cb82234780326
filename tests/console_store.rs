//! The console's storage (operators, sessions, tokens, throttling, audit, the leads list, the
//! follow-up and erasure) against `SqliteStore`, `SupabaseStore` on a real PostgREST, and
//! `OutboxStore`.

mod helpers;

use std::time::Duration;

use helpers::console_suite::suite;
use helpers::supabase::SupabaseStack;
use myriam::store::outbox::{OutboxConfig, OutboxStore};
use myriam::store::sqlite::SqliteStore;
use myriam::store::supabase::SupabaseStore;
use secrecy::SecretString;

fn supabase(stack: &SupabaseStack) -> SupabaseStore {
    SupabaseStore::new(
        &stack.url,
        &SecretString::from(stack.service_key.clone()),
        "bp",
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn sqlite_passes_the_console_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&SqliteStore::open(&dir.path().join("console.db")).unwrap()).await;
}

#[tokio::test]
async fn supabase_passes_the_console_suite_on_real_postgrest() {
    let stack = SupabaseStack::start();
    suite(&supabase(&stack)).await;
    // What the suite left in PostgreSQL: the erased caller's rows are gone for good.
    assert_eq!(
        stack.psql("select count(*) from bp.leads where telephone = '+15145550101'"),
        "0"
    );
    assert_eq!(
        stack.psql("select count(*) from bp.calls where from_number = '+15145550101'"),
        "0"
    );
    // Two entries, then three throttled attempts in one entry and one of a later window.
    assert_eq!(stack.psql("select count(*) from bp.audit_log"), "4");
    assert_eq!(
        stack.psql(
            "select string_agg(count::text, ',' order by id) from bp.audit_log \
             where action = 'login_throttled'"
        ),
        "3,1"
    );
    assert_eq!(
        stack.psql("select count(*) from bp.audit_log where client = '192.0.2.7'"),
        "2"
    );
}

#[tokio::test]
async fn outbox_passes_the_console_suite_and_erases_its_queue() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let store = OutboxStore::new(
        supabase(&stack),
        SqliteStore::open(&dir.path().join("outbox.db")).unwrap(),
        OutboxConfig::default(),
    );
    suite(&store).await;
    assert_eq!(store.depth().await.unwrap(), 0);
}
