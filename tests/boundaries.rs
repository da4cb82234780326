//! The layering of `docs/ARCHITECTURE.md` (section Boundaries), enforced: every `crate::…` path in
//! the library's code (comments and `#[cfg(test)]` modules aside) names a top-level module of a
//! strictly lower layer. A strict order of layers also means there is no import cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may use the modules of the layers below its own, never its own layer's
/// other modules nor anything above.
const LAYERS: &[&[&str]] = &[
    &["text", "environment", "build_info"],
    &["domain", "client_addr"],
    &["secrets"],
    &["config"],
    &["redact", "locks", "lifecycle", "dev_token"],
    &["qualification"],
    &["metrics"],
    &["telemetry"],
    &["store"],
    &["twilio", "operators"],
    &["calls"],
    &["ivr", "vapi", "alerts", "callback"],
    &["bridge", "erasure"],
    &["state"],
    &["routes"],
    &["console"],
    &["startup"],
    &["cli", "preflight"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`, `main.rs`, `bin/`).
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix("src").unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        file => Some(file.trim_end_matches(".rs").to_owned()),
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal ("https://…") is not a comment.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named after `crate::`, including `crate::{a, b::c}`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(group.split(',').map(ident).filter(|m| !m.is_empty()));
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

#[test]
fn every_module_is_in_a_layer_and_imports_only_lower_layers() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    let mut breaks = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            breaks.push(format!(
                "{}: module `{module}` is in no layer",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&code(&text)) {
            if used == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(used.clone());
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(_) => breaks.push(format!(
                    "{}: `{module}` (layer {own}) uses `crate::{used}`, which is not below it",
                    file.display()
                )),
                None => breaks.push(format!(
                    "{}: uses `crate::{used}`, which is in no layer",
                    file.display()
                )),
            }
        }
    }
    assert!(
        breaks.is_empty(),
        "layer boundaries broken:\n{}",
        breaks.join("\n")
    );
    // The checker sees what it should: a few known edges.
    for (from, to) in [
        ("routes", "state"),
        ("calls", "store"),
        ("store", "qualification"),
    ] {
        assert!(
            graph.get(from).is_some_and(|u| u.contains(to)),
            "expected `{from}` to use `{to}`: {graph:?}"
        );
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_ignores_comments_and_tests() {
    let text = "use crate::{config::Settings, store};\n\
                // crate::startup in a comment\n\
                let url = \"https://x\"; crate::domain::X;\n\
                #[cfg(test)]\nmod tests { use crate::routes; }";
    let found = uses(&code(text));
    assert_eq!(
        found,
        ["config", "domain", "store"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

/// The module path of a file of `src/` (`src/store/outbox/worker.rs` → `store::outbox::worker`,
/// a `mod.rs` → its directory's module).
fn module_path(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix("src").unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_str().unwrap().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s` (empty when there is none).
fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    &s[..end]
}

/// The path tree starting at `at` (`a::b::{c, d::{e, f}}`), as its leaf paths, and where it ends.
fn path_tree(code: &str, mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix: Vec<String> = Vec::new();
    loop {
        if code[at..].starts_with('{') {
            at += 1;
            let mut leaves = Vec::new();
            loop {
                at += code[at..].len() - code[at..].trim_start().len();
                if at >= code.len() {
                    break;
                }
                if code[at..].starts_with('}') {
                    at += 1;
                    break;
                }
                let (items, end) = path_tree(code, at);
                leaves.extend(items.into_iter().map(|item| {
                    let mut path = prefix.clone();
                    path.extend(item);
                    // `use a::{self, b}`: `self` names the module before it.
                    if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
                        path.pop();
                    }
                    path
                }));
                // Past `as _` and the like, to the next item or the group's end.
                at = end.max(at + 1);
                let mut depth = 0;
                while let Some(c) = code[at..].chars().next() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            at += 1;
                            break;
                        }
                        _ => {}
                    }
                    at += c.len_utf8();
                }
            }
            return (leaves, at);
        }
        let word = ident_at(&code[at..]);
        if word.is_empty() {
            break;
        }
        prefix.push(word.to_owned());
        at += word.len();
        match code[at..].strip_prefix("::") {
            Some(_) => at += 2,
            None => break,
        }
    }
    (vec![prefix], at)
}

/// Every path of `code` (a file whose module is `own`) that names a module of the crate, as an
/// absolute module path whose last segments may be items: `crate::…`, `super::…` (as many as
/// there are), `self::…`, and `child::…` for a module `own` declares (`children`), grouped imports
/// `{a, b::{c, d}}` expanded. A visibility `pub(in crate::x)` names no dependency.
fn paths(code: &str, own: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let c = code[at..].chars().next().unwrap();
        let starts_word = (c.is_ascii_alphabetic() || c == '_')
            && !code[..at].ends_with(|p: char| is_ident_char(p) || p == '$' || p == '#');
        if !starts_word {
            at += c.len_utf8();
            continue;
        }
        let word = ident_at(&code[at..]);
        let after = at + word.len();
        if !code[after..].starts_with("::") || code[..at].ends_with("::") {
            at = after;
            continue;
        }
        let start = at;
        let (tree, end) = path_tree(code, at);
        at = end.max(after);
        if code[..start].trim_end().ends_with("pub(in") {
            continue;
        }
        for path in tree {
            let mut segments = path.iter().map(String::as_str);
            let mut base: Vec<String> = own.to_vec();
            let first = segments.next().unwrap_or_default();
            let mut rest: Vec<String> = Vec::new();
            match first {
                "crate" => base.clear(),
                "self" => {}
                "super" => {
                    base.pop();
                    while segments.clone().next() == Some("super") {
                        segments.next();
                        base.pop();
                    }
                }
                child if children.contains(child) => rest.push(child.to_owned()),
                _ => continue,
            }
            rest.extend(segments.map(str::to_owned));
            base.extend(rest);
            if !base.is_empty() {
                found.push(base);
            }
        }
    }
    found
}

/// The deepest file-module `path` names (`crate::store::StoreError` names `store`).
fn file_module<'a>(path: &[String], modules: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|len| modules.get(&path[..len]))
}

/// One shortest circle through the edge `from → to`, if `to` leads back to `from`.
fn circle_through(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    from: &Vec<String>,
    to: &Vec<String>,
) -> Option<Vec<Vec<String>>> {
    let mut came_from: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([to]);
    let mut seen = BTreeSet::from([to]);
    while let Some(at) = queue.pop_front() {
        if at == from {
            let mut trail = vec![from.clone()];
            let mut step = from;
            while step != to {
                step = came_from[step];
                trail.push(step.clone());
            }
            trail.reverse();
            let mut circle = vec![from.clone()];
            circle.extend(trail);
            return Some(circle);
        }
        for next in graph.get(at).into_iter().flatten() {
            if seen.insert(next) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The file-module graph of every room (a directory of `src/`): file → the files of its room it
/// names.
fn room_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files
        .retain(|f| !f.starts_with("src/bin") && f.strip_prefix("src").unwrap().iter().count() > 1);
    files.sort();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let own = module_path(file);
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|m| m.len() == own.len() + 1 && m.starts_with(&own))
            .map(|m| m[own.len()].clone())
            .collect();
        let text = std::fs::read_to_string(file).unwrap();
        let targets = graph.entry(own.clone()).or_default();
        for path in paths(&code(&text), &own, &children) {
            if let Some(target) = file_module(&path, &modules)
                && target[0] == own[0]
                && *target != own
            {
                targets.insert(target.clone());
            }
        }
    }
    graph
}

/// Within each room, its files (`mod.rs` included: a parent's `pub use child::X` is an edge to the
/// child) import one another without a circle.
#[test]
fn no_circle_between_the_files_of_a_room() {
    let graph = room_graph();
    let mut circles = BTreeSet::new();
    for (from, targets) in &graph {
        for to in targets {
            if let Some(circle) = circle_through(&graph, from, to) {
                // One way to write each circle: from its smallest module.
                let ring = &circle[..circle.len() - 1];
                let start = (0..ring.len()).min_by_key(|&i| &ring[i]).unwrap();
                let mut names: Vec<String> = ring[start..]
                    .iter()
                    .chain(&ring[..start])
                    .map(|m| m.join("::"))
                    .collect();
                names.push(names[0].clone());
                circles.insert(names.join(" -> "));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files of one room import each other in a circle:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
    // The checker sees what it should: a few known edges.
    let path = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    for (from, to) in [
        ("store::alerts", "store::sqlite"),
        ("store::outbox", "store::supabase"),
        ("store", "store::alerts"),
        ("bridge::session", "bridge::relay"),
        ("console", "console::state"),
        ("console::api", "console::erasure"),
    ] {
        assert!(
            graph
                .get(&path(from))
                .is_some_and(|s| s.contains(&path(to))),
            "expected {from} to use {to}: {graph:?}"
        );
    }
}

#[test]
fn the_room_checker_reads_every_kind_of_path() {
    let own = vec!["store".to_owned(), "outbox".to_owned()];
    let children: BTreeSet<String> = ["queue", "worker"].map(str::to_owned).into();
    let text = "mod queue;\n\
                pub use worker::{Worker, spawn};\n\
                use super::{rows::{LeadRow, Saved}, sqlite::CachedStatements as _, Store};\n\
                use super::super::config::Settings;\n\
                use crate::store::{self, alerts::{self, Alerts}};\n\
                pub(in crate::store) fn write() { self::queue::push(); store::console::x(); }\n\
                // super::stats in a comment\n\
                let url = \"https://x\"; serde_json::Value::Null;\n\
                #[cfg(test)]\nmod tests { use super::super::erasures; }";
    let found: BTreeSet<String> = paths(&code(text), &own, &children)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let expected: BTreeSet<String> = [
        "store::outbox::worker::Worker",
        "store::outbox::worker::spawn",
        "store::rows::LeadRow",
        "store::rows::Saved",
        "store::sqlite::CachedStatements",
        "store::Store",
        "config::Settings",
        "store",
        "store::alerts",
        "store::alerts::Alerts",
        "store::outbox::queue::push",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(found, expected);
    let modules: BTreeSet<Vec<String>> = [vec!["store"], vec!["store", "alerts"]]
        .map(|m| m.into_iter().map(str::to_owned).collect())
        .into();
    let named = |p: &str| {
        file_module(
            &p.split("::").map(str::to_owned).collect::<Vec<_>>(),
            &modules,
        )
        .map(|m| m.join("::"))
    };
    assert_eq!(named("store::StoreError").as_deref(), Some("store"));
    assert_eq!(
        named("store::alerts::Alerts").as_deref(),
        Some("store::alerts")
    );
    assert_eq!(named("config::Settings"), None);
}
