//! Writes a run's results under `benches/results/`: a JSON file for tools and a markdown file
//! for people, both named after the bench and the start time, so two runs sit side by side and
//! compare with `diff` or `jq`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Result;
use crate::machine::Machine;

/// The directory results go to: `benches/results/` in the source tree.
pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// Writes `RESULTS_DIR/BENCH-STAMP.json` (`{"bench", "machine", "results"}`) and `.md` (the
/// machine line, then `markdown`). `quick` runs get `-quick` in their names, so smoke runs are
/// never mistaken for measurements. Returns the two paths.
pub fn write(
    bench: &str,
    machine: &Machine,
    quick: bool,
    results: &impl Serialize,
    markdown: &str,
) -> Result<(PathBuf, PathBuf)> {
    write_in(&results_dir(), bench, machine, quick, results, markdown)
}

/// [`write()`] into `dir`.
pub fn write_in(
    dir: &Path,
    bench: &str,
    machine: &Machine,
    quick: bool,
    results: &impl Serialize,
    markdown: &str,
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let quick = if quick { "-quick" } else { "" };
    let stem = format!("{bench}-{}{quick}", machine.file_stamp());
    let json_path = dir.join(format!("{stem}.json"));
    let markdown_path = dir.join(format!("{stem}.md"));
    let json = serde_json::json!({
        "bench": bench,
        "machine": machine,
        "results": results,
    });
    let mut json_text = serde_json::to_string_pretty(&json)?;
    json_text.push('\n');
    std::fs::write(&json_path, json_text)
        .map_err(|err| format!("cannot write {}: {err}", json_path.display()))?;
    let text = format!("# {bench}\n\nMachine: {}\n\n{markdown}", machine.describe());
    std::fs::write(&markdown_path, text)
        .map_err(|err| format!("cannot write {}: {err}", markdown_path.display()))?;
    Ok((json_path, markdown_path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn writes_json_and_markdown_named_by_bench_and_date() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine {
            cpus: 2,
            cpu_model: "Test CPU".into(),
            kernel: "6.1".into(),
            load_average_1m: Some(0.5),
            date_utc: "2026-11-24T09:30:05Z".into(),
        };
        let (json, markdown) = write_in(
            dir.path(),
            "chaos",
            &machine,
            true,
            &serde_json::json!({"failed": 0}),
            "| a |\n",
        )
        .unwrap();
        assert!(json.ends_with("chaos-20261124-093005-quick.json"));
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(value["results"]["failed"], 0);
        assert_eq!(value["machine"]["cpus"], 2);
        let text = std::fs::read_to_string(markdown).unwrap();
        assert!(text.contains("2 CPUs, Test CPU"), "{text}");
        assert!(text.ends_with("| a |\n"));
    }
}
