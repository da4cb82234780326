//! Live updates of the leads list: `GET /console/events` is a server-sent event stream. Every
//! [`POLL`] it asks the store for leads of the list's filter changed since the last look (so it
//! sees what any instance wrote) and sends each as an event `lead` whose data is
//! `{"id": …, "html": <the list row>}`; `console.js` puts the row in place. The session is checked
//! again at every poll (revoked or expired: the stream ends); the stream ends when the gateway
//! drains. Every change is sent, however many there are between two polls: a poll reads every page
//! of changes, not only the first. Streams are capped: [`MAX_PER_SESSION`] per session and
//! [`MAX_STREAMS`] per instance; beyond, 503 with `Retry-After`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use time::OffsetDateTime;

use super::auth::PageUser;
use super::pages::lead_row;
use super::{ConsoleError, ConsoleState, ListQuery, PageError};
use crate::operators::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT};
use crate::store::console::{ConsoleStore, LeadFilter, ListedLead, MAX_LIST};

/// How often the store is asked for changes.
pub const POLL: Duration = Duration::from_secs(2);
/// Open streams one session may hold (tabs) …
pub const MAX_PER_SESSION: usize = 4;
/// … and this instance in all.
pub const MAX_STREAMS: usize = 200;
/// Most changes one poll reads (pages of [`MAX_LIST`]); the rest come at the next poll.
pub const MAX_CHANGES_PER_POLL: usize = 2_000;

/// The open streams, per session digest.
fn open_streams() -> &'static Mutex<HashMap<String, usize>> {
    static OPEN: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

/// A stream's place among the open ones, given back when the stream ends.
#[derive(Debug)]
struct StreamPlace(String);

impl StreamPlace {
    fn take(session: &str) -> Option<Self> {
        let mut open = open_streams()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(session).copied().unwrap_or(0);
        if total >= MAX_STREAMS || mine >= MAX_PER_SESSION {
            return None;
        }
        open.insert(session.to_owned(), mine + 1);
        Some(Self(session.to_owned()))
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = open_streams()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.0);
            }
        }
    }
}

struct Watch {
    console: ConsoleState,
    filter: LeadFilter,
    session: Option<String>,
    since: OffsetDateTime,
    queued: Vec<Event>,
    _place: StreamPlace,
}

/// Every lead of `filter` changed after `since`, all pages (at most [`MAX_CHANGES_PER_POLL`]).
async fn changes(
    console: &ConsoleState,
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
        let page = console.store.search_leads(&filter).await?;
        changed.extend(page.leads);
        match page.next {
            Some(next) if changed.len() < MAX_CHANGES_PER_POLL => filter.cursor = Some(next),
            _ => return Ok(changed),
        }
    }
}

impl Watch {
    /// The next event: a queued one, or the changes of the next poll; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queued.pop() {
                return Some((Ok(event), self));
            }
            tokio::select! {
                () = self.console.shutdown.cancelled() => return None,
                () = tokio::time::sleep(POLL) => {}
            }
            let now = OffsetDateTime::now_utc();
            let live = match &self.session {
                Some(id_hash) => matches!(
                    self.console.store.session(id_hash).await,
                    Ok(Some(s)) if s.revoked_at.is_none()
                        && now - s.created_at <= ABSOLUTE_TIMEOUT
                        && now - s.last_seen_at <= IDLE_TIMEOUT
                ),
                None => false,
            };
            if !live {
                return None;
            }
            let Ok(changed) = changes(&self.console, &self.filter, self.since).await else {
                continue;
            };
            // Next time, from the newest change seen, but never past this poll's start: a change
            // written while the pages were read is sent (perhaps twice) rather than lost.
            let newest = changed.iter().filter_map(|l| l.lead.updated_at).max();
            if let Some(newest) = newest {
                self.since = self.since.max(newest.min(now - time::Duration::seconds(1)));
            }
            // The queue pops from its end: oldest change last in, sent first.
            let mut changed = changed;
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
    }
}

/// `GET /console/events?<list filter>`.
pub async fn events(
    State(console): State<ConsoleState>,
    user: PageUser,
    Query(query): Query<ListQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let mut filter = LeadFilter::try_from(&query)?;
    filter.cursor = None;
    let session = user.principal.session.clone();
    let Some(id_hash) = &session else {
        return Err(ConsoleError::Unauthenticated.into());
    };
    let Some(place) = StreamPlace::take(id_hash) else {
        return Err(ConsoleError::Busy(Duration::from_secs(POLL.as_secs() * 5)).into());
    };
    let watch = Watch {
        _place: place,
        console,
        filter,
        session,
        since: OffsetDateTime::now_utc() - time::Duration::seconds(1),
        queued: Vec::new(),
    };
    Ok(Sse::new(stream::unfold(watch, Watch::next)).keep_alive(KeepAlive::default()))
}
