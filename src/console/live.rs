//! Live updates of the leads list: `GET /console/events` is a server-sent event stream of events
//! `lead` whose data is `{"id": …, "html": <the list row>}`; `console.js` puts the row in place.
//!
//! **One poller per instance** ([`LiveHub`]) asks the store, every [`LiveSettings::poll`], for
//! every lead changed since its last look (so it sees what any instance wrote; every page of
//! changes, not only the first) and for the sessions of every open stream (one query for all),
//! and broadcasts that batch to every open stream. Each stream keeps the changes of its list's
//! filter (status, follow-up, urgency and dates are checked in memory; a search, which only the
//! store can answer, asks the store for its matches among that batch's changes, and only when
//! the batch has some) and ends when its session is revoked or expired, or when the gateway
//! drains. The cost is one poll per interval however many streams are open.
//!
//! **A stream that falls behind loses nothing**: the broadcast keeps [`BACKLOG`] batches; a stream
//! that missed some (its client reads slowly) re-reads every change of its filter from its own
//! cursor (one query, that stream's only), then goes on with the batches. Closing it instead
//! would leave the browser's `EventSource` to reconnect after its retry delay, and resuming with
//! `Last-Event-ID` would mean the same re-read from a cursor, later.
//!
//! The poller starts with the first stream (no stream, no polling) and stops when the gateway
//! drains. Streams are capped: [`LiveSettings::max_per_session`] per session and
//! [`LiveSettings::max_streams`] per instance; beyond, 503 with `Retry-After`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Extension;
use axum::extract::Query;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::PageUser;
use super::error::{ConsoleError, PageError};
use super::pages::lead_row;
use super::query::ListQuery;
use crate::config::LiveSettings;
use crate::operators::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT};
use crate::store::AnyStore;
use crate::store::console::{ConsoleStore, LeadFilter, ListedLead, MAX_LIST};

/// How often the store is asked for changes (the default of [`LiveSettings::poll`]).
pub const POLL: Duration = Duration::from_secs(2);
/// Open streams one session may hold (tabs) (the default of [`LiveSettings::max_per_session`]) …
pub const MAX_PER_SESSION: usize = 4;
/// … and this instance in all (the default of [`LiveSettings::max_streams`]).
pub const MAX_STREAMS: usize = 200;
/// Most changes one poll reads (pages of [`MAX_LIST`]); the rest come at the next poll.
pub const MAX_CHANGES_PER_POLL: usize = 2_000;
/// Batches the broadcast keeps for a stream that reads slowly before it has to re-read.
pub const BACKLOG: usize = 16;

/// One poll's findings, shared by every stream.
#[derive(Debug)]
pub struct Batch {
    /// Changes strictly after this instant were looked for …
    since: OffsetDateTime,
    /// … and the next poll looks after this one.
    next: OffsetDateTime,
    /// Every lead changed (no filter: each stream keeps its own).
    changes: Vec<ListedLead>,
    /// Sessions of open streams that are no longer valid (revoked, expired, gone).
    ended: HashSet<String>,
    /// The store did not answer: no changes this time, the cursor stays.
    failed: bool,
}

/// The instance's live updates: the poller, its broadcast and the open streams.
#[derive(Debug)]
pub struct LiveHub {
    store: AnyStore,
    settings: LiveSettings,
    tx: broadcast::Sender<Arc<Batch>>,
    /// Open streams per session digest.
    open: Mutex<HashMap<String, usize>>,
    started: AtomicBool,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    polls: AtomicU64,
    queries: AtomicU64,
}

impl LiveHub {
    pub fn new(
        store: AnyStore,
        settings: LiveSettings,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BACKLOG);
        Arc::new(Self {
            store,
            settings,
            tx,
            open: Mutex::default(),
            started: AtomicBool::new(false),
            tracker,
            shutdown,
            polls: AtomicU64::new(0),
            queries: AtomicU64::new(0),
        })
    }

    /// Polls done so far.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Store queries made for live updates so far, by the poller and by every stream.
    pub fn store_queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Open streams of this instance.
    pub fn open_streams(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Every lead of `filter` changed after `since`, all pages (at most
    /// [`MAX_CHANGES_PER_POLL`]); each page is one store query, counted.
    async fn changes(
        &self,
        filter: &LeadFilter,
        since: OffsetDateTime,
    ) -> Result<Vec<ListedLead>, crate::store::StoreError> {
        let mut filter = LeadFilter {
            updated_after: Some(since),
            cursor: None,
            limit: MAX_LIST,
            ..filter.clone()
        };
        let mut changed = Vec::new();
        loop {
            self.queries.fetch_add(1, Ordering::Relaxed);
            let page = self.store.search_leads(&filter).await?;
            changed.extend(page.leads);
            match page.next {
                Some(next) if changed.len() < MAX_CHANGES_PER_POLL => filter.cursor = Some(next),
                _ => return Ok(changed),
            }
        }
    }

    /// The open streams' sessions that are no longer valid; `None` when the store did not answer
    /// (no stream is ended for that).
    async fn ended_sessions(&self, now: OffsetDateTime) -> Option<HashSet<String>> {
        let open: Vec<String> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if open.is_empty() {
            return Some(HashSet::new());
        }
        self.queries.fetch_add(1, Ordering::Relaxed);
        let sessions = self.store.sessions(&open).await.ok()?;
        let valid: HashSet<&str> = sessions
            .iter()
            .filter(|s| {
                s.revoked_at.is_none()
                    && now - s.created_at <= ABSOLUTE_TIMEOUT
                    && now - s.last_seen_at <= IDLE_TIMEOUT
            })
            .map(|s| s.id_hash.as_str())
            .collect();
        Some(
            open.into_iter()
                .filter(|id| !valid.contains(id.as_str()))
                .collect(),
        )
    }

    /// Starts the poller once, on the gateway's task tracker (the drain waits for it).
    fn ensure_started(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let hub = Arc::clone(self);
        self.tracker.spawn(async move { hub.run().await });
    }

    /// Every interval: one look at the store for every stream, broadcast; until the drain.
    async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.settings.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cursor = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = OffsetDateTime::now_utc();
            if self.tx.receiver_count() == 0 {
                // Nobody watches: nothing to look for; the next stream starts from now.
                cursor = now - time::Duration::seconds(1);
                continue;
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            let ended = self.ended_sessions(now).await.unwrap_or_default();
            let batch = match self.changes(&LeadFilter::default(), cursor).await {
                Ok(changes) => {
                    // Next time, from the newest change seen, but never past this poll's start: a
                    // change written while the pages were read is sent (perhaps twice) rather
                    // than lost.
                    let next = changes
                        .iter()
                        .filter_map(|l| l.lead.updated_at)
                        .max()
                        .map_or(cursor, |newest| {
                            cursor.max(newest.min(now - time::Duration::seconds(1)))
                        });
                    let batch = Batch {
                        since: cursor,
                        next,
                        changes,
                        ended,
                        failed: false,
                    };
                    cursor = next;
                    batch
                }
                Err(error) => {
                    tracing::debug!(%error, "live updates: the store did not answer");
                    Batch {
                        since: cursor,
                        next: cursor,
                        changes: Vec::new(),
                        ended,
                        failed: true,
                    }
                }
            };
            // No receiver left meanwhile: nothing to do.
            let _ = self.tx.send(Arc::new(batch));
        }
    }
}

/// Whether a changed lead belongs to a list filter, for what memory can tell (the search is the
/// store's to answer).
fn in_filter(filter: &LeadFilter, listed: &ListedLead) -> bool {
    let lead = &listed.lead;
    filter.status.is_none_or(|s| lead.status == s)
        && filter.suivi.is_none_or(|s| listed.follow_up.suivi == s)
        && filter
            .urgent
            .is_none_or(|u| lead.urgence.is_some_and(|v| v == u))
        && filter
            .created_from
            .is_none_or(|from| lead.created_at.is_some_and(|c| c >= from))
        && filter
            .created_before
            .is_none_or(|before| lead.created_at.is_some_and(|c| c < before))
}

/// A stream's place among the open ones, given back when the stream ends.
#[derive(Debug)]
struct StreamPlace {
    hub: Arc<LiveHub>,
    session: String,
}

impl StreamPlace {
    fn take(hub: &Arc<LiveHub>, session: &str) -> Option<Self> {
        let mut open = hub.open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(session).copied().unwrap_or(0);
        if total >= hub.settings.max_streams || mine >= hub.settings.max_per_session {
            return None;
        }
        open.insert(session.to_owned(), mine + 1);
        Some(Self {
            hub: Arc::clone(hub),
            session: session.to_owned(),
        })
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.session);
            }
        }
    }
}

struct Watch {
    place: StreamPlace,
    rx: broadcast::Receiver<Arc<Batch>>,
    filter: LeadFilter,
    /// Changes up to here were sent.
    cursor: OffsetDateTime,
    /// Batches were missed: re-read from `cursor` before going on.
    behind: bool,
    queued: Vec<Event>,
}

impl Watch {
    /// This stream's changes in `batch`: from memory, or for a search, the store's matches.
    async fn changes_in(&self, batch: &Batch) -> Result<Vec<ListedLead>, ()> {
        let kept: Vec<&ListedLead> = batch
            .changes
            .iter()
            .filter(|l| in_filter(&self.filter, l))
            .collect();
        if self.filter.search.is_none() || kept.is_empty() {
            return Ok(kept.into_iter().cloned().collect());
        }
        let ids: HashSet<_> = kept.iter().map(|l| l.lead.id).collect();
        let matched = self
            .place
            .hub
            .changes(&self.filter, batch.since)
            .await
            .map_err(drop)?;
        Ok(matched
            .into_iter()
            .filter(|l| ids.contains(&l.lead.id))
            .collect())
    }

    fn queue(&mut self, mut changed: Vec<ListedLead>) {
        // The queue pops from its end: oldest change last in, sent first.
        changed.sort_by_key(|l| std::cmp::Reverse(l.lead.updated_at));
        for listed in &changed {
            let data = serde_json::json!({
                "id": listed.lead.id,
                "html": lead_row(listed),
            });
            self.queued
                .push(Event::default().event("lead").data(data.to_string()));
        }
    }

    /// The next event: a queued one, or the changes of the next batch; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queued.pop() {
                return Some((Ok(event), self));
            }
            let received = tokio::select! {
                () = self.place.hub.shutdown.cancelled() => return None,
                received = self.rx.recv() => received,
            };
            let batch = match received {
                Ok(batch) => batch,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "live updates: a stream fell behind; it re-reads");
                    self.behind = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if batch.ended.contains(&self.place.session) {
                return None;
            }
            if batch.failed {
                continue;
            }
            if self.behind || batch.since > self.cursor {
                // Batches were missed: every change of this filter since the cursor, from the
                // store, then on with the batches (which may repeat some: rows are replaced).
                let now = OffsetDateTime::now_utc();
                let Ok(changed) = self.place.hub.changes(&self.filter, self.cursor).await else {
                    continue;
                };
                let newest = changed.iter().filter_map(|l| l.lead.updated_at).max();
                self.cursor = self
                    .cursor
                    .max(batch.next)
                    .max(newest.map_or(self.cursor, |n| n.min(now - time::Duration::seconds(1))));
                self.behind = false;
                self.queue(changed);
                continue;
            }
            let Ok(changed) = self.changes_in(&batch).await else {
                // The search could not be answered: re-read from the cursor next time.
                self.behind = true;
                continue;
            };
            self.cursor = self.cursor.max(batch.next);
            self.queue(changed);
        }
    }
}

/// `GET /console/events?<list filter>`.
pub async fn events(
    Extension(hub): Extension<Arc<LiveHub>>,
    user: PageUser,
    Query(query): Query<ListQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let mut filter = LeadFilter::try_from(&query)?;
    filter.cursor = None;
    let Some(id_hash) = &user.principal.session else {
        return Err(ConsoleError::Unauthenticated.into());
    };
    let Some(place) = StreamPlace::take(&hub, id_hash) else {
        return Err(ConsoleError::Busy(Duration::from_secs(
            hub.settings.poll.as_secs().max(1) * 5,
        ))
        .into());
    };
    hub.ensure_started();
    let watch = Watch {
        rx: hub.tx.subscribe(),
        place,
        filter,
        cursor: OffsetDateTime::now_utc() - time::Duration::seconds(1),
        behind: false,
        queued: Vec::new(),
    };
    Ok(Sse::new(stream::unfold(watch, Watch::next)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LeadId;
    use crate::qualification::Lead;
    use crate::store::Store as _;
    use crate::store::sqlite::SqliteStore;

    /// A stream that missed more batches than the broadcast keeps re-reads every change of its
    /// filter from its own cursor: none is lost.
    #[tokio::test]
    async fn a_stream_that_fell_behind_rereads_from_its_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(SqliteStore::open(&dir.path().join("live.db")).unwrap());
        let hub = LiveHub::new(
            store.clone(),
            LiveSettings::default(),
            TaskTracker::new(),
            CancellationToken::new(),
        );
        let cursor = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let mut watch = Watch {
            rx: hub.tx.subscribe(),
            place: StreamPlace::take(&hub, "session").unwrap(),
            filter: LeadFilter::default(),
            cursor,
            behind: false,
            queued: Vec::new(),
        };
        for _ in 0..40 {
            store.save_lead(&Lead::new(LeadId::new())).await.unwrap();
        }
        // The batches that carried them are gone (the stream did not read); later ones are empty.
        for _ in 0..BACKLOG + 4 {
            let empty = Batch {
                since: cursor,
                next: cursor,
                changes: Vec::new(),
                ended: HashSet::new(),
                failed: false,
            };
            hub.tx.send(Arc::new(empty)).unwrap();
        }
        let before = hub.store_queries();
        let mut events = 0;
        while events < 40 {
            let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .unwrap_or_else(|_| panic!("{events} of 40 changes arrived"));
            let (event, rest) = next.expect("the stream goes on");
            assert!(event.is_ok());
            watch = rest;
            events += 1;
        }
        assert_eq!(
            hub.store_queries() - before,
            1,
            "one re-read, this stream's"
        );
        assert!(watch.queued.is_empty());
    }
}
