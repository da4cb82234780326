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
    &["ivr", "vapi", "alerts"],
    &["bridge"],
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
