//! What the `proxies` bench needs to run the shared nginx/HAProxy harness
//! (`../shared/bench/proxies`, a set of shell scripts): the tools it calls, a command line it can
//! run through `bash -c`, and its tab-separated results read back as JSON.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Every program the harness's scripts call (`run.sh` and `kill_replica.sh` check for them
/// only after the bench has built the gateway, so the bench checks first).
pub const REQUIRED_TOOLS: [&str; 8] = [
    "nginx", "haproxy", "wrk", "curl", "jq", "envsubst", "ss", "taskset",
];

/// The shared harness's folder: `../shared/bench/proxies` from the workspace root.
pub fn default_dir() -> PathBuf {
    let root = crate::binary::workspace_root();
    root.parent()
        .unwrap_or(&root)
        .join("shared")
        .join("bench")
        .join("proxies")
}

/// The Debian packages that provide [`REQUIRED_TOOLS`].
pub const INSTALL_HINT: &str =
    "apt-get install -y nginx haproxy wrk jq curl gettext-base iproute2 util-linux";

/// The tools among `tools` found in none of the directories of `path` (a `PATH` value).
fn missing_tools<'a>(tools: &[&'a str], path: &std::ffi::OsStr) -> Vec<&'a str> {
    tools
        .iter()
        .copied()
        .filter(|tool| !std::env::split_paths(path).any(|dir| is_executable(&dir.join(tool))))
        .collect()
}

/// Fails, naming what is missing and how to install it, unless every one of `tools` is on
/// this process's `PATH`. `why` follows the list in the message (empty, or ": what needs them").
pub fn require_tools(tools: &[&str], why: &str, install: &str) -> crate::Result<()> {
    let missing = missing_tools(tools, &std::env::var_os("PATH").unwrap_or_default());
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing {}{why}. Install them with\n    {install}",
        missing.join(", ")
    )
    .into())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// `word` quoted for a POSIX shell, so a path with spaces or quotes survives the harness's
/// `bash -c "exec $GATEWAY_CMD"`.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:,=+@".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A tab-separated table with a header line (the harness's `summary.tsv`) as a JSON array of
/// objects keyed by the header; cells that read as integers or finite numbers become numbers.
pub fn tsv_to_json(text: &str) -> Value {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let Some(header) = lines.next() else {
        return Value::Array(Vec::new());
    };
    let keys: Vec<&str> = header.split('\t').collect();
    let rows = lines
        .map(|line| {
            let row: Map<String, Value> = keys
                .iter()
                .zip(line.split('\t'))
                .map(|(key, cell)| ((*key).to_owned(), cell_value(cell)))
                .collect();
            Value::Object(row)
        })
        .collect();
    Value::Array(rows)
}

fn cell_value(cell: &str) -> Value {
    cell.parse::<i64>()
        .ok()
        .map(serde_json::Number::from)
        .or_else(|| {
            cell.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
        })
        .map_or_else(|| Value::String(cell.to_owned()), Value::Number)
}

/// `text` with a blank line before each markdown table that directly follows a line of prose,
/// so that the table renders as one (the harness prints its settings line right above it).
pub fn separate_tables(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Option<&str> = None;
    for line in text.lines() {
        let follows_prose =
            previous.is_some_and(|prev| !prev.trim().is_empty() && !prev.starts_with('|'));
        if line.starts_with('|') && follows_prose {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        previous = Some(line);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn reads_the_summary_table_with_numbers_as_numbers() {
        let tsv = "round\ttarget\trps\tp50_ms\n1\tnginx\t52820.5\t0.570\n1\tdirect\tNaN\t0.2\n";
        let json = tsv_to_json(tsv);
        assert_eq!(json[0]["target"], "nginx");
        assert_eq!(json[0]["round"], 1);
        assert!(json[0]["round"].is_i64());
        assert_eq!(json[0]["rps"], 52820.5);
        assert_eq!(json[1]["rps"], "NaN", "not a finite number: kept as text");
        assert_eq!(json.as_array().unwrap().len(), 2);
        assert_eq!(tsv_to_json(""), Value::Array(Vec::new()));
    }

    #[test]
    fn puts_a_blank_line_between_prose_and_a_table() {
        let printed = "wrk -t1 -c32\n| a | b |\n|---|---|\n| 1 | 2 |\n\nper-round data: x\n";
        assert_eq!(
            separate_tables(printed),
            "wrk -t1 -c32\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nper-round data: x\n"
        );
        assert_eq!(separate_tables("| a |\n"), "| a |\n");
    }

    #[test]
    fn quotes_only_what_the_shell_would_split_or_expand() {
        assert_eq!(
            shell_quote("/root/target/release/demo-gateway"),
            "/root/target/release/demo-gateway"
        );
        assert_eq!(shell_quote("/my dir/gw"), "'/my dir/gw'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn finds_missing_tools_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("wrk");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let not_executable = dir.path().join("nginx");
        std::fs::write(&not_executable, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(
            missing_tools(&["wrk", "nginx", "haproxy"], &path),
            ["nginx", "haproxy"]
        );
    }
}
