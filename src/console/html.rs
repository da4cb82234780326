//! HTML building blocks compiled into the binary: escaping (every value goes through [`Esc`]),
//! Montréal time, the page layout, and the French labels.

use std::fmt;

use time::{Date, Month, OffsetDateTime, UtcOffset};

use crate::domain::LeadStatus;
use crate::store::console::FollowUp;

/// A value escaped for HTML text and double-quoted attributes.
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

/// Montréal's offset at `t`: EDT (−4) from the second Sunday of March 02:00 to the first Sunday
/// of November 02:00, EST (−5) otherwise.
pub fn montreal_offset(t: OffsetDateTime) -> UtcOffset {
    let year = t.year();
    let nth_sunday = |month: Month, n: u8| -> Date {
        let first = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
        let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
        first + time::Duration::days(i64::from(to_sunday) + 7 * i64::from(n - 1))
    };
    let starts = nth_sunday(Month::March, 2)
        .with_hms(7, 0, 0)
        .map(time::PrimitiveDateTime::assume_utc);
    let ends = nth_sunday(Month::November, 1)
        .with_hms(6, 0, 0)
        .map(time::PrimitiveDateTime::assume_utc);
    let hours = match (starts, ends) {
        (Ok(s), Ok(e)) if t >= s && t < e => -4,
        _ => -5,
    };
    UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// The start of a Montréal calendar day, as an instant.
pub fn montreal_midnight(date: Date) -> OffsetDateTime {
    let noon = date.midnight().assume_utc() + time::Duration::hours(12);
    date.midnight().assume_offset(montreal_offset(noon))
}

/// `2026-12-01 08:47` in Montréal time.
pub fn local_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(montreal_offset(t));
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

pub fn status_label(status: LeadStatus) -> &'static str {
    match status {
        LeadStatus::Nouveau => "Nouveau",
        LeadStatus::EnCours => "En cours",
        LeadStatus::Qualifie => "Qualifié",
        LeadStatus::Abandonne => "Abandonné",
        LeadStatus::Transfere => "Transféré au bureau",
        LeadStatus::Rappel => "À rappeler (message vocal)",
    }
}

pub fn follow_up_label(f: FollowUp) -> &'static str {
    match f {
        FollowUp::Nouveau => "À traiter",
        FollowUp::Contacte => "Contacté",
        FollowUp::Planifie => "Planifié",
        FollowUp::Termine => "Terminé",
        FollowUp::Perdu => "Perdu",
    }
}

/// What a page's layout needs besides its body.
#[derive(Debug, Clone, Default)]
pub struct Chrome<'a> {
    pub title: &'a str,
    /// The signed-in operator and the CSRF token for the logout form.
    pub user: Option<(&'a str, &'a str)>,
    pub admin: bool,
}

/// The whole document: language, viewport, stylesheet and script from `/console/static`, a skip
/// link, the navigation, then `body` in `<main>`.
pub fn layout(chrome: &Chrome<'_>, body: &str) -> String {
    let nav = match chrome.user {
        Some((email, csrf)) => {
            let admin = if chrome.admin {
                r#"<li><a href="/console/erase">Effacer un appelant</a></li><li><a href="/console/audit">Journal</a></li>"#
            } else {
                ""
            };
            format!(
                r#"<nav aria-label="Navigation principale"><ul><li><a href="/console/leads">Leads</a></li><li><a href="/console/tableau">Tableau de bord</a></li>{admin}</ul>
<form method="post" action="/console/logout" class="logout"><input type="hidden" name="csrf" value="{}"><a class="who" href="/console/profil" title="Mon profil">{}</a> <button type="submit">Se déconnecter</button></form></nav>"#,
                Esc(csrf),
                Esc(email)
            )
        }
        None => String::new(),
    };
    format!(
        r##"<!doctype html>
<html lang="fr-CA">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} — Myriam</title>
<link rel="stylesheet" href="/console/static/console.css">
<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">
<script src="/console/static/console.js" defer></script>
</head>
<body>
<a class="skip" href="#contenu">Aller au contenu</a>
<header><span class="brand">Myriam · BP Émondage</span>
{nav}</header>
<main id="contenu" tabindex="-1">
{body}
</main>
</body>
</html>
"##,
        Esc(chrome.title)
    )
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            Esc(r#"<a href="x">'&'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn montreal_time_follows_daylight_saving() {
        assert_eq!(
            local_time(datetime!(2026-12-01 13:47 UTC)),
            "2026-12-01 08:47"
        );
        assert_eq!(
            local_time(datetime!(2026-07-01 13:47 UTC)),
            "2026-07-01 09:47"
        );
        // 2026: DST from 8 March 07:00 UTC to 1 November 06:00 UTC.
        assert_eq!(
            montreal_offset(datetime!(2026-03-08 06:59 UTC)).whole_hours(),
            -5
        );
        assert_eq!(
            montreal_offset(datetime!(2026-03-08 07:00 UTC)).whole_hours(),
            -4
        );
        assert_eq!(
            montreal_offset(datetime!(2026-11-01 05:59 UTC)).whole_hours(),
            -4
        );
        assert_eq!(
            montreal_offset(datetime!(2026-11-01 06:00 UTC)).whole_hours(),
            -5
        );
        assert_eq!(
            montreal_midnight(date!(2026 - 12 - 01)),
            datetime!(2026-12-01 05:00 UTC)
        );
        assert_eq!(
            montreal_midnight(date!(2026 - 07 - 01)),
            datetime!(2026-07-01 04:00 UTC)
        );
    }

    #[test]
    fn layout_shows_admin_links_to_admins_only() {
        let staff = layout(
            &Chrome {
                title: "T<",
                user: Some(("a@b.c", "tok")),
                admin: false,
            },
            "<p>x</p>",
        );
        assert!(staff.contains("T&lt; — Myriam") && !staff.contains("/console/audit"));
        assert!(staff.contains(r#"name="csrf" value="tok""#));
        let admin = layout(
            &Chrome {
                title: "T",
                user: Some(("a@b.c", "t")),
                admin: true,
            },
            "",
        );
        assert!(admin.contains("/console/audit"));
        assert_eq!(status_label(LeadStatus::Qualifie), "Qualifié");
        assert_eq!(follow_up_label(FollowUp::Perdu), "Perdu");
    }
}
