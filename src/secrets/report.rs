//! Every variable judged against an environment: a [`Status`] per variable, the groups made optional,
//! the [`Report`] `check_secrets` prints, and the README's markdown table.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::catalogue::{CATALOGUE, Group, VarSpec, spec};
use super::shapes::is_placeholder;
use super::source::EnvSource;
use crate::environment::Environment;

/// What a variable looks like, never what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Present,
    Missing,
    Placeholder,
    Malformed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "present",
            Status::Missing => "missing",
            Status::Placeholder => "placeholder",
            Status::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Groups whose variables become optional, e.g. `--skip-vapi`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skips {
    groups: BTreeSet<Group>,
}

impl Skips {
    pub fn none() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, group: Group) -> Self {
        self.groups.insert(group);
        self
    }

    pub fn contains(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    pub fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        self.groups.iter().copied()
    }

    /// The groups the configuration itself makes optional: `CALL_MODE=ivr` never calls Vapi and
    /// `STORE=sqlite` never calls Supabase.
    pub fn implied_by(source: &EnvSource) -> Self {
        let mut skips = Self::none();
        if source.get("CALL_MODE") == Some("ivr") {
            skips = skips.with(Group::Vapi);
        }
        if source.get("STORE") == Some("sqlite") {
            skips = skips.with(Group::Supabase);
        }
        skips
    }
}

/// The verdict on one variable.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub group: Group,
    pub required: bool,
    pub secret: bool,
    pub status: Status,
    /// Why it is not usable: "empty", or what shape was expected. Never derived from the value.
    pub detail: Option<&'static str>,
}

impl Check {
    /// A required variable that is not usable, or any set variable that is malformed.
    pub fn is_failure(&self) -> bool {
        match self.status {
            Status::Present => false,
            Status::Malformed => true,
            Status::Missing | Status::Placeholder => self.required,
        }
    }
}

/// Judges one variable as found in `source`.
pub fn check_var(
    spec: &VarSpec,
    source: &EnvSource,
    environment: Environment,
    skips: &Skips,
) -> Check {
    let required = environment == Environment::Production
        && spec.required_in_production
        && !skips.contains(spec.group);
    let (status, detail) = match source.get(spec.name) {
        None => (Status::Missing, None),
        Some(v) if v.trim().is_empty() => (Status::Missing, Some("empty")),
        Some(v) if is_placeholder(v) => (Status::Placeholder, None),
        Some(v) => match spec.shape.check(v, environment) {
            Ok(()) => (Status::Present, None),
            Err(expected) => (Status::Malformed, Some(expected)),
        },
    };
    Check {
        name: spec.name,
        group: spec.group,
        required,
        secret: spec.secret,
        status,
        detail,
    }
}

/// The whole catalogue judged against `source`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: Environment,
    pub skipped_groups: Vec<Group>,
    pub variables: Vec<Check>,
}

impl Report {
    pub fn new(source: &EnvSource, environment: Environment, skips: &Skips) -> Self {
        Self {
            environment,
            skipped_groups: skips.groups().collect(),
            variables: CATALOGUE
                .iter()
                .map(|spec| check_var(spec, source, environment, skips))
                .collect(),
        }
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.variables.iter().filter(|c| c.is_failure())
    }

    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn count(&self, status: Status) -> usize {
        self.variables.iter().filter(|c| c.status == status).count()
    }

    /// One line: `OK — …` or `FAIL — …` naming the failing variables.
    pub fn verdict(&self) -> String {
        let failing: Vec<String> = self
            .failures()
            .map(|c| format!("{} ({})", c.name, c.status))
            .collect();
        if failing.is_empty() {
            format!(
                "verdict: OK — every required variable is usable for {} ({} present, {} missing, {} placeholder)",
                self.environment,
                self.count(Status::Present),
                self.count(Status::Missing),
                self.count(Status::Placeholder),
            )
        } else {
            format!(
                "verdict: FAIL — {} variable(s) not usable for {}: {}",
                failing.len(),
                self.environment,
                failing.join(", ")
            )
        }
    }

    /// The human table printed by `check_secrets`.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<26} {:<14} {:<9} {:<12} NOTE",
            "NAME", "GROUP", "REQUIRED", "STATUS"
        );
        for c in &self.variables {
            let mut notes: Vec<String> = Vec::new();
            if let Some(d) = c.detail {
                notes.push(d.to_owned());
            }
            if c.status == Status::Missing {
                if let Some(default) = spec(c.name).default {
                    notes.push(format!("default {default}"));
                }
            }
            if c.secret {
                notes.push("secret".to_owned());
            }
            let line = format!(
                "{:<26} {:<14} {:<9} {:<12} {}",
                c.name,
                c.group.as_str(),
                if c.required { "required" } else { "optional" },
                c.status.as_str(),
                notes.join("; ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// The README's variable table, generated from the catalogue (a test keeps the README equal to it).
pub fn markdown_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "| Variable | Group | Required in production | Secret | Shape | Default | Meaning |\n|---|---|---|---|---|---|---|\n",
    );
    for v in CATALOGUE {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            v.name,
            v.group,
            if v.required_in_production {
                match v.group {
                    Group::Vapi => "yes (unless `CALL_MODE=ivr`)",
                    Group::Supabase => "yes (unless `STORE=sqlite`)",
                    _ => "yes",
                }
            } else {
                "no"
            },
            if v.secret { "yes" } else { "no" },
            v.shape.describe(),
            v.default
                .map_or_else(|| "—".to_owned(), |d| format!("`{d}`")),
            v.meaning
        );
    }
    out
}
