//! Live updates of the leads list: `GET /console/events` is a server-sent event stream. Every
//! [`POLL`] it asks the store for leads of the list's filter changed since the last look (so it
//! sees what any instance wrote) and sends each as an event `lead` whose data is
//! `{"id": …, "html": <the list row>}`; `console.js` puts the row in place. The session is checked
//! again at every poll (revoked or expired: the stream ends); the stream ends when the gateway
//! drains.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use time::OffsetDateTime;

use super::auth::PageUser;
use super::pages::lead_row;
use super::{ConsoleError, ConsoleState, ListQuery, PageError};
use crate::operators::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT};
use crate::store::console::{ConsoleStore, LeadFilter};

/// How often the store is asked for changes.
pub const POLL: Duration = Duration::from_secs(2);

struct Watch {
    console: ConsoleState,
    filter: LeadFilter,
    session: Option<String>,
    since: OffsetDateTime,
    queued: Vec<Event>,
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
            let filter = LeadFilter {
                updated_after: Some(self.since),
                ..self.filter.clone()
            };
            let Ok(page) = self.console.store.search_leads(&filter).await else {
                continue;
            };
            // Newest last in the queue's pop order: the oldest change is sent first.
            for listed in &page.leads {
                if let Some(updated) = listed.lead.updated_at {
                    self.since = self.since.max(updated);
                }
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
    if session.is_none() {
        return Err(ConsoleError::Unauthenticated.into());
    }
    let watch = Watch {
        console,
        filter,
        session,
        since: OffsetDateTime::now_utc() - time::Duration::seconds(1),
        queued: Vec::new(),
    };
    Ok(Sse::new(stream::unfold(watch, Watch::next)).keep_alive(KeepAlive::default()))
}
