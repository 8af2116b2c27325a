//! The crate's modules import one way: the root (`lib.rs`) re-exports the public names for
//! users, and no module inside imports them back through it. A module that writes
//! `crate::CircuitOpen` instead of `crate::circuit_breaker::CircuitOpen` hides which module it
//! depends on, and a reader following the import lands in `lib.rs` instead of the type.
//!
//! A text scan of `src/**/*.rs` (code only: comments and string literals are blanked first), run
//! by every `cargo test` with nothing to install.

use std::path::Path;

/// The names `lib.rs` re-exports with `pub use self::module::{...}`.
fn root_reexports(lib: &str) -> Vec<String> {
    let mut names = Vec::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use self::") else {
            continue;
        };
        let list = rest
            .split_once('{')
            .map_or(rest.rsplit("::").next().unwrap_or(rest), |(_, list)| list);
        names.extend(
            list.trim_end_matches('}')
                .split(',')
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty()),
        );
    }
    names
}

/// `text` with comments and string literals replaced by spaces.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push(' ');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every name in `code` reached as `crate::NAME` or inside `crate::{...}` at its top level.
fn crate_root_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => found.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            found.push(item);
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
        .into_iter()
        .map(|item| item.split("::").next().unwrap_or("").trim().to_owned())
        .collect()
}

fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_module_imports_the_roots_reexports() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs is readable");
    let reexports = root_reexports(&code_only(&lib));
    assert!(
        reexports.iter().any(|name| name == "CircuitBreaker"),
        "the scan found lib.rs's re-exports: {reexports:?}"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut through_root = Vec::new();
    for file in files.iter().filter(|file| !file.ends_with("lib.rs")) {
        let code = code_only(&std::fs::read_to_string(file).expect("a source file"));
        for name in crate_root_paths(&code) {
            if reexports.contains(&name) {
                through_root.push(format!("{}: crate::{name}", file.display()));
            }
        }
    }
    assert!(
        through_root.is_empty(),
        "import these from the module that defines them, not through lib.rs:\n{}",
        through_root.join("\n")
    );
}

#[test]
fn the_scan_sees_both_spellings_and_skips_comments() {
    let code = code_only(
        "use crate::{error::BoxError, CircuitOpen};\n// crate::State\nlet s = \"crate::Hedge\"; crate::RoundRobin::new(x);",
    );
    assert_eq!(
        crate_root_paths(&code),
        ["error", "CircuitOpen", "RoundRobin"]
    );
}
