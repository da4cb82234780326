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

/// Segments after a prefix: `a::b::c` stops at the first non-path character; `{…}` expands.
fn segments(rest: &str, ident: &dyn Fn(&str) -> String) -> Vec<Vec<String>> {
    let mut base = Vec::new();
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            return group
                .split(',')
                .map(|item| {
                    let mut path = base.clone();
                    path.extend(
                        item.trim()
                            .split("::")
                            .map(ident)
                            .take_while(|s| !s.is_empty()),
                    );
                    path
                })
                .collect();
        }
        let word = ident(rest);
        if word.is_empty() {
            break;
        }
        rest = &rest[word.len()..];
        base.push(word);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => break,
        }
    }
    vec![base]
}

/// Every module path a file names through `crate::…` or `super::…` (groups `{a, b::c}` one level
/// deep), resolved to absolute module paths; the last segment may be an item, not a module.
fn paths(code: &str, own: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        found.extend(segments(&code[at + "crate::".len()..], &ident));
    }
    for (at, _) in code.match_indices("super::") {
        let before = &code[..at];
        if before.ends_with("super::") {
            continue; // counted from its first `super::`
        }
        let mut rest = &code[at..];
        // The module `super::` names: a file's parent module (for `mod.rs`, its directory's).
        let mut base: Vec<String> = own.to_vec();
        if !is_mod_rs || !base.is_empty() {
            base.pop();
        }
        while let Some(more) = rest.strip_prefix("super::") {
            rest = more;
            if rest.starts_with("super::") {
                base.pop();
            }
        }
        for tail in segments(rest, &ident) {
            let mut path = base.clone();
            path.extend(tail);
            found.push(path);
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// Within each room (a directory of `src/`), the files and sub-directories ("units") import one
/// another without a circle: a room's `mod.rs` is its facade and is not a unit.
#[test]
fn no_circle_between_the_files_of_a_room() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    // (room, from unit) -> to units
    let mut edges: BTreeMap<(Vec<String>, String), BTreeSet<String>> = BTreeMap::new();
    let units_of = |room: &[String]| -> BTreeSet<String> {
        let dir = Path::new("src").join(room.join("/"));
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
                    .map(|p| {
                        p.file_name()
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .trim_end_matches(".rs")
                            .to_owned()
                    })
                    .filter(|u| u != "mod")
                    .collect()
            })
            .unwrap_or_default()
    };
    for file in &files {
        if file.starts_with("src/bin") {
            continue;
        }
        let own = module_path(file);
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let text = std::fs::read_to_string(file).unwrap();
        for used in paths(&code(&text), &own, is_mod_rs) {
            // Every room both paths are inside: the units they belong to there.
            for depth in 1..own.len().min(used.len()) {
                if own[..depth] != used[..depth] {
                    break;
                }
                let room = own[..depth].to_vec();
                let (from, to) = (own[depth].clone(), used[depth].clone());
                if from == to {
                    continue;
                }
                let units = units_of(&room);
                if units.contains(&from) && units.contains(&to) {
                    edges.entry((room, from)).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for a circle in each room.
    let mut circles = Vec::new();
    let rooms: BTreeSet<Vec<String>> = edges.keys().map(|(r, _)| r.clone()).collect();
    for room in &rooms {
        let next = |u: &str| -> Vec<String> {
            edges
                .get(&(room.clone(), u.to_owned()))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        let starts: Vec<String> = edges
            .keys()
            .filter(|(r, _)| r == room)
            .map(|(_, u)| u.clone())
            .collect();
        for start in &starts {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, trail)) = stack.pop() {
                for to in next(&at) {
                    if &to == start {
                        let mut circle = trail.clone();
                        circle.push(to.clone());
                        circles.push(format!("src/{}: {}", room.join("/"), circle.join(" → ")));
                    } else if seen.insert(to.clone()) {
                        let mut longer = trail.clone();
                        longer.push(to.clone());
                        stack.push((to, longer));
                    }
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "files of one room import each other in a circle:\n{}",
        circles.join("\n")
    );
    // The checker sees what it should: a few known edges.
    for (room, from, to) in [
        ("store", "sqlite", "rows"),
        ("store", "outbox", "supabase"),
        ("bridge", "session", "relay"),
    ] {
        assert!(
            edges
                .get(&(vec![room.to_owned()], from.to_owned()))
                .is_some_and(|s| s.contains(to)),
            "expected src/{room}/{from} to use {to}: {edges:?}"
        );
    }
}
