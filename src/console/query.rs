//! What a request names: the list's filter ([`ListQuery`] → `LeadFilter`), a lead id from the
//! path, the phone number of an erasure request.

use serde::Deserialize;
use time::Date;
use time::macros::format_description;

use super::error::ConsoleError;
use super::html;
use crate::domain::{LeadId, LeadStatus, PhoneNumber};
use crate::store::console::{Cursor, FollowUp, LeadFilter, SearchTerm};

/// The list's query string, as typed (empty fields mean "any").
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The machine's status: `nouveau`, `en_cours`, `qualifie`, `abandonne`, `transfere`,
    /// `rappel`.
    #[param(pattern = "^(nouveau|en_cours|qualifie|abandonne|transfere|rappel)$")]
    pub status: Option<String>,
    /// The staff's follow-up: nouveau, contacte, planifie, termine, perdu.
    #[param(pattern = "^(nouveau|contacte|planifie|termine|perdu)$")]
    pub suivi: Option<String>,
    /// `true` for urgent leads only, `false` for the others.
    #[param(pattern = "^(true|false)$")]
    pub urgent: Option<String>,
    /// Created on or after this day (YYYY-MM-DD, Montréal time).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Created on or before this day (YYYY-MM-DD, Montréal time).
    #[param(format = Date)]
    pub to: Option<String>,
    /// Search in name, phone and address (letters, digits, spaces and `-'.+@` count).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// The `next_cursor` of the previous page (opaque; anything else is refused with 400).
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

fn present(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn day(value: &str) -> Result<Date, ConsoleError> {
    Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map_err(|_| ConsoleError::BadRequest("a date is YYYY-MM-DD".to_owned()))
}

impl TryFrom<&ListQuery> for LeadFilter {
    type Error = ConsoleError;
    fn try_from(q: &ListQuery) -> Result<Self, Self::Error> {
        let bad = |what: &str| ConsoleError::BadRequest(what.to_owned());
        Ok(LeadFilter {
            status: present(q.status.as_ref())
                .map(|s| LeadStatus::try_from(s).map_err(|_| bad("unknown status")))
                .transpose()?,
            suivi: present(q.suivi.as_ref())
                .map(|s| FollowUp::try_from(s).map_err(|_| bad("unknown suivi")))
                .transpose()?,
            urgent: match present(q.urgent.as_ref()) {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(bad("urgent is true or false")),
            },
            created_from: present(q.from.as_ref())
                .map(day)
                .transpose()?
                .map(html::montreal_midnight),
            created_before: present(q.to.as_ref())
                .map(day)
                .transpose()?
                .map(|d| html::montreal_midnight(d.next_day().unwrap_or(d))),
            updated_after: None,
            search: present(q.q.as_ref()).and_then(|s| SearchTerm::try_from(s).ok()),
            cursor: present(q.cursor.as_ref())
                .map(|c| Cursor::try_from(c).map_err(|_| bad("invalid cursor")))
                .transpose()?,
            limit: match q.limit {
                Some(0) => return Err(bad("limit is 1 to 200")),
                Some(n) => n,
                None => 0,
            },
        })
    }
}

impl ListQuery {
    /// A parameter sent empty (`?to=`): the pages' forms send them for "any", the API refuses them.
    pub fn has_empty(&self) -> bool {
        [
            &self.status,
            &self.suivi,
            &self.urgent,
            &self.from,
            &self.to,
            &self.q,
            &self.cursor,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| v.trim().is_empty()))
    }

    /// The query string of this filter without the cursor (for links and the export).
    pub fn without_cursor(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &self.status),
            ("suivi", &self.suivi),
            ("urgent", &self.urgent),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ] {
            if let Some(v) = present(value.as_ref()) {
                s.append_pair(name, v);
            }
        }
        s.finish()
    }

    /// What the audit log may say of a filter: which parts were used, never their values (a
    /// search is caller data).
    pub fn audit_summary(&self) -> String {
        let used: Vec<&str> = [
            ("status", &self.status),
            ("suivi", &self.suivi),
            ("urgent", &self.urgent),
            ("from", &self.from),
            ("to", &self.to),
            ("search", &self.q),
        ]
        .into_iter()
        .filter(|(_, v)| present(v.as_ref()).is_some())
        .map(|(name, _)| name)
        .collect();
        if used.is_empty() {
            "filter=none".to_owned()
        } else {
            format!("filter={}", used.join(","))
        }
    }
}

/// A lead id from the path.
pub fn lead_id(raw: &str) -> Result<LeadId, ConsoleError> {
    LeadId::try_from(raw).map_err(|_| ConsoleError::NotFound)
}

/// The phone number of an erasure request, and its typed confirmation (`EFFACER`).
pub fn erasure_target(phone: &str, confirm: &str) -> Result<PhoneNumber, ConsoleError> {
    if confirm.trim() != "EFFACER" {
        return Err(ConsoleError::BadRequest(
            "type EFFACER to confirm the erasure".to_owned(),
        ));
    }
    PhoneNumber::try_from(phone)
        .map_err(|_| ConsoleError::BadRequest("not a North American phone number".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_parse_into_filters() {
        let q = ListQuery {
            status: Some("qualifie".into()),
            suivi: Some(String::new()),
            urgent: Some("true".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            q: Some(" Côté ".into()),
            cursor: None,
            limit: Some(10),
        };
        let f = LeadFilter::try_from(&q).unwrap();
        assert_eq!(f.status, Some(LeadStatus::Qualifie));
        assert_eq!(f.suivi, None);
        assert_eq!(f.urgent, Some(true));
        assert_eq!(
            f.created_before.unwrap() - f.created_from.unwrap(),
            time::Duration::days(1)
        );
        assert_eq!(f.search.unwrap().as_str(), "Côté");
        assert_eq!(
            q.without_cursor(),
            "status=qualifie&urgent=true&from=2026-12-01&to=2026-12-01&q=C%C3%B4t%C3%A9"
        );
        assert_eq!(q.audit_summary(), "filter=status,urgent,from,to,search");
        assert_eq!(ListQuery::default().audit_summary(), "filter=none");
        assert!(!ListQuery::default().has_empty());
        assert!(
            ListQuery {
                to: Some(" ".into()),
                ..ListQuery::default()
            }
            .has_empty()
        );
        for bad in [
            ListQuery {
                status: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                suivi: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                urgent: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                from: Some("1/12/2026".into()),
                ..ListQuery::default()
            },
            ListQuery {
                cursor: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                limit: Some(0),
                ..ListQuery::default()
            },
        ] {
            assert!(LeadFilter::try_from(&bad).is_err(), "{bad:?}");
        }
        assert!(erasure_target("514 555 0101", "effacer").is_err());
        assert!(erasure_target("12", "EFFACER").is_err());
        assert_eq!(
            erasure_target("514 555 0101", "EFFACER").unwrap().as_e164(),
            "+15145550101"
        );
        assert!(lead_id("nope").is_err());
    }
}
