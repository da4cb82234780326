//! CSV export of a filter: UTF-8 with a byte-order mark (Excel fr-CA opens it as UTF-8), `;` as
//! separator (Excel's list separator in French locales), French headers, every cell quoted, and
//! cells that a spreadsheet would read as a formula prefixed with `'`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::html::{follow_up_label, local_time, status_label};
use crate::store::StoreError;
use crate::store::console::{ConsoleStore, LeadFilter, ListedLead, MAX_LIST};

/// Most rows one export holds.
pub const MAX_ROWS: usize = 10_000;

pub const HEADERS: [&str; 13] = [
    "Identifiant",
    "Créé le",
    "Nom complet",
    "Téléphone",
    "Adresse",
    "Type de service",
    "Description",
    "Urgent",
    "Statut",
    "Suivi",
    "Note",
    "Langue",
    "Modifié le",
];

fn cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// The CSV text of `leads`, BOM and header line included.
pub fn csv(leads: &[ListedLead]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&HEADERS.map(cell).join(";"));
    out.push_str("\r\n");
    for l in leads {
        let lead = &l.lead;
        let row = [
            lead.id.to_string(),
            lead.created_at.map(local_time).unwrap_or_default(),
            lead.nom_complet
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            lead.telephone
                .as_ref()
                .map(|p| p.as_e164().to_owned())
                .unwrap_or_default(),
            lead.adresse_complete
                .as_ref()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            lead.type_service
                .map(|s| s.slug().to_owned())
                .unwrap_or_default(),
            lead.description
                .as_ref()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default(),
            if lead.urgence == Some(true) {
                "oui"
            } else {
                "non"
            }
            .to_owned(),
            status_label(lead.status).to_owned(),
            follow_up_label(l.follow_up.suivi).to_owned(),
            l.follow_up.note.clone().unwrap_or_default(),
            lead.language.as_str().to_owned(),
            lead.updated_at.map(local_time).unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|v| cell(v)).collect::<Vec<_>>().join(";"));
        out.push_str("\r\n");
    }
    out
}

/// Every lead of `filter` (its cursor ignored), newest first, at most [`MAX_ROWS`].
pub async fn all_leads(
    store: &impl ConsoleStore,
    filter: &LeadFilter,
) -> Result<Vec<ListedLead>, StoreError> {
    let mut filter = LeadFilter {
        cursor: None,
        limit: MAX_LIST,
        ..filter.clone()
    };
    let mut out = Vec::new();
    loop {
        let page = store.search_leads(&filter).await?;
        out.extend(page.leads);
        match page.next {
            Some(next) if out.len() < MAX_ROWS => filter.cursor = Some(next),
            _ => break,
        }
    }
    out.truncate(MAX_ROWS);
    Ok(out)
}

/// The CSV as a download.
pub fn download(leads: &[ListedLead]) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"leads.csv\"",
            ),
        ],
        csv(leads),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(cell("+15145550101"), "\"'+15145550101\"");
        let text = csv(&[]);
        assert!(text.starts_with("\u{feff}\"Identifiant\";\"Créé le\""));
        assert!(text.ends_with("\"Modifié le\"\r\n"));
    }
}
