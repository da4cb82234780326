//! Documents that must not drift from the code: the README's variable table, `.env.example`, the
//! CI workflow and `.ci/run`.

use std::collections::BTreeSet;

use myriam::secrets::{CATALOGUE, markdown_table};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn readme_variable_table_is_the_catalogue() {
    let readme = read("README.md");
    let table = readme
        .split("<!-- env-table:start -->\n")
        .nth(1)
        .and_then(|rest| rest.split("<!-- env-table:end -->").next())
        .expect("README has the env-table markers");
    assert_eq!(
        table.trim(),
        markdown_table().trim(),
        "README.md's variable table is stale: regenerate it with \
         `cargo run --bin check_secrets -- --markdown`"
    );
}

#[test]
fn env_example_lists_every_catalogued_variable_and_nothing_else() {
    let example = read(".env.example");
    let names: BTreeSet<String> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        })
        .collect();
    let catalogue: BTreeSet<String> = CATALOGUE.iter().map(|v| v.name.to_owned()).collect();
    assert_eq!(names, catalogue);
}

#[test]
fn ci_runs_the_readme_test_command_and_the_workflow_runs_preflight() {
    let ci = read(".ci/run");
    assert!(ci.lines().any(|l| l.trim() == "make test"), "{ci}");
    assert!(read("README.md").contains("make test"));
    let workflow = read(".github/workflows/preflight.yml");
    for needle in [
        "push:",
        "pull_request:",
        "ENVIRONMENT: test",
        "BP_SKIP_VAPI_TESTS: \"1\"",
        "BP_SKIP_SUPABASE_TESTS: \"1\"",
        r#"make preflight ARGS="--skip-frontend --skip-e2e --skip-security --skip-vapi""#,
    ] {
        assert!(workflow.contains(needle), "workflow lacks {needle}");
    }
}

#[test]
fn the_vapi_assistant_uses_the_tool_and_messages_the_gateway_handles() {
    let assistant: serde_json::Value =
        serde_json::from_str(&read("docs/vapi-assistant.json")).expect("valid JSON");
    let tool = &assistant["model"]["tools"][0];
    assert_eq!(tool["function"]["name"], myriam::vapi::messages::TOOL_NAME);
    assert_eq!(
        tool["function"]["parameters"]["required"],
        serde_json::json!(["reponse"])
    );
    assert!(
        tool["server"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/vapi/webhook")
    );
    for handled in ["tool-calls", "status-update", "end-of-call-report"] {
        assert!(
            assistant["serverMessages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == handled),
            "{handled}"
        );
    }
    let prompt = assistant["model"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert!(prompt.contains("enregistrer_reponse") && prompt.contains("{{lead_id}}"));
    assert!(read("README.md").contains("docs/vapi-assistant.json"));
}

/// `analysisPlan` (Vapi's `AnalysisPlan`: `summaryPlan` and `structuredDataPlan`, each with
/// `enabled` and `messages` of `{role, content}`; the latter with a JSON Schema `schema`) asks for
/// the summary and the structured data in French, from the transcript; the structured data's
/// service names are the gateway's own.
#[test]
fn the_vapi_assistant_asks_for_a_french_summary_and_structured_data() {
    let assistant: serde_json::Value =
        serde_json::from_str(&read("docs/vapi-assistant.json")).expect("valid JSON");
    let plan = &assistant["analysisPlan"];
    for key in ["summaryPlan", "structuredDataPlan"] {
        let part = &plan[key];
        assert_eq!(part["enabled"], true, "{key}");
        let messages = part["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 2, "{key}");
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[1]["role"], "user");
        let system = messages[0]["content"].as_str().unwrap();
        assert!(system.contains("en français"), "{key}: {system}");
        assert!(
            messages[1]["content"]
                .as_str()
                .unwrap()
                .contains("{{transcript}}"),
            "{key}"
        );
        let known: std::collections::BTreeSet<&str> =
            ["messages", "enabled", "schema", "timeoutSeconds"].into();
        for field in part.as_object().unwrap().keys() {
            assert!(
                known.contains(field.as_str()),
                "{key}.{field} is not Vapi's"
            );
        }
    }
    let structured = &plan["structuredDataPlan"];
    assert!(
        structured["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("{{schema}}")
    );
    let schema = &structured["schema"];
    assert_eq!(schema["type"], "object");
    let services: Vec<&str> = schema["properties"]["type_service"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = myriam::qualification::ServiceType::ALL
        .iter()
        .map(|s| s.slug())
        .collect();
    assert_eq!(services, ours);
    assert_eq!(schema["properties"]["urgence"]["type"], "boolean");
}

fn files_under(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(relative);
        }
    }
}

/// `docs/ARCHITECTURE.md`'s code map names every source file and every test file, so a new file
/// cannot land without a line saying what it is for.
#[test]
fn the_code_map_names_every_source_and_test_file() {
    let architecture = read("docs/ARCHITECTURE.md");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("src"), &mut files);
    files_under(&root.join("tests"), &mut files);
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !architecture.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}
