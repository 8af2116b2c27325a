//! The gateway's modules import one way: this reads every `crate::` and `super::` path in
//! `src/**/*.rs` (in `use` lines and in code, not in comments or strings), draws the graph of the
//! top-level modules (`discovery::dns` counts as `discovery`; a name re-exported by `lib.rs`
//! counts as the module it comes from) and fails on a cycle, naming it.
//!
//! A text scan rather than a compiler plugin: the paths that make a dependency are written out
//! in the source, and a scan runs in every `cargo test` with nothing to install.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the top-level modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// `text` without comments and string or char literals (each replaced by a space), so a path
/// in a doc comment or a message is no dependency.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && matches!(next, Some('#' | '"')) && !ident_before(&chars, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
                j += 1;
                loop {
                    match chars.get(j) {
                        None => break,
                        Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                            j += 1 + hashes;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j;
                out.push(' ');
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && is_char_literal(&chars, i) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Whether the `'` at `i` opens a char literal (`'a'`, `'\n'`), not a lifetime (`'static`).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// Every full path of the use tree at the start of `text` (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut rest = text.trim_start();
    let mut prefix = Vec::new();
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = at;
                    break;
                }
            }
            let mut items = Vec::new();
            let mut depth = 0;
            let mut start = 0;
            let inner = &group[..end];
            for (at, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..at]);
                        start = at + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            return items
                .into_iter()
                .filter(|item| !item.trim().is_empty())
                .flat_map(expand)
                .map(|tail| prefix.iter().cloned().chain(tail).collect())
                .collect();
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
            .collect();
        if ident.is_empty() {
            return vec![prefix];
        }
        rest = &rest[ident.len()..];
        if ident != "self" {
            prefix.push(ident);
        }
        match rest.trim_start().strip_prefix("::") {
            Some(after) => rest = after.trim_start(),
            None => return vec![prefix],
        }
    }
}

/// The inline modules (`mod tests {`) open at each byte of `code`, innermost last.
fn inline_modules_at(code: &str) -> Vec<Vec<String>> {
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending: Option<String> = None;
    let mut previous = String::new();
    let mut word = String::new();
    let mut at_byte = Vec::with_capacity(code.len());
    for c in code.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if !word.is_empty() {
                if previous == "mod" {
                    pending = Some(word.clone());
                }
                previous = std::mem::take(&mut word);
            }
            match c {
                '{' => {
                    depth += 1;
                    if let Some(name) = pending.take() {
                        open.push((name, depth));
                    }
                }
                '}' => {
                    if open.last().is_some_and(|(_, at)| *at == depth) {
                        open.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                ';' => pending = None,
                _ => {}
            }
        }
        let names: Vec<String> = open.iter().map(|(name, _)| name.clone()).collect();
        at_byte.extend(std::iter::repeat_n(names, c.len_utf8()));
    }
    at_byte
}

/// The graph of the crate whose sources are `files` (path under `src` → text).
fn graph(files: &BTreeMap<String, String>) -> Graph {
    let lib = files
        .get("lib.rs")
        .map(|text| code_only(text))
        .unwrap_or_default();
    // `pub use module::{A, b}` in lib.rs: the crate-root name → its module.
    let mut reexports = BTreeMap::new();
    for (at, _) in lib.match_indices("pub use ") {
        for path in expand(&lib[at + "pub use ".len()..]) {
            if let (Some(module), Some(name)) = (path.first(), path.last()) {
                reexports.insert(name.clone(), module.clone());
            }
        }
    }
    let mut graph = Graph::new();
    for (file, text) in files {
        if file == "lib.rs" || file == "main.rs" {
            continue;
        }
        let file_path: Vec<String> = file
            .trim_end_matches(".rs")
            .split('/')
            .filter(|segment| *segment != "mod")
            .map(str::to_owned)
            .collect();
        let top = file_path[0].clone();
        let code = code_only(text);
        let inline = inline_modules_at(&code);
        let edges = graph.entry(top.clone()).or_default();
        for keyword in ["crate::", "super::"] {
            for (at, _) in code.match_indices(keyword) {
                if code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                {
                    continue;
                }
                let mut base: Vec<String> = if keyword == "crate::" {
                    Vec::new()
                } else {
                    let mut module = file_path.clone();
                    module.extend(inline.get(at).cloned().unwrap_or_default());
                    module.pop();
                    module
                };
                // `super::super::x`
                let mut tail = &code[at + keyword.len()..];
                while let Some(after) = tail.trim_start().strip_prefix("super::") {
                    base.pop();
                    tail = after;
                }
                for path in expand(tail) {
                    let full: Vec<String> = base.iter().cloned().chain(path).collect();
                    let Some(first) = full.first() else { continue };
                    let target = reexports.get(first).unwrap_or(first).clone();
                    if target != top && target != "*" {
                        edges.insert(target);
                    }
                }
            }
        }
    }
    graph
}

/// A cycle of `graph`, as `a -> b -> a`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn read_sources(dir: &Path, under: &str, files: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the crate's sources are readable")
        .map(|entry| entry.expect("the crate's sources are readable").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .expect("a directory entry has a name")
            .to_string_lossy()
            .into_owned();
        let relative = if under.is_empty() {
            name.clone()
        } else {
            format!("{under}/{name}")
        };
        if path.is_dir() {
            read_sources(&path, &relative, files);
        } else if name.ends_with(".rs") {
            files.insert(
                relative,
                std::fs::read_to_string(&path).expect("a source file is UTF-8 text"),
            );
        }
    }
}

fn gateway_graph() -> Graph {
    let mut files = BTreeMap::new();
    read_sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    graph(&files)
}

fn sources(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .collect()
}

#[test]
fn the_gateway_s_modules_import_one_way() {
    let graph = gateway_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the gateway's modules import in a circle: {}",
            cycle.join(" -> ")
        );
    }
    // The scan sees the crate: a graph with no edges would pass for the wrong reason.
    assert!(graph["handlers"].contains("upstream"), "{graph:#?}");
    assert!(graph["edge"].contains("state"), "{graph:#?}");
}

#[test]
fn configuration_keys_routes_and_the_status_mapping_are_leaves() {
    let graph = gateway_graph();
    for leaf in ["config", "routes", "failure"] {
        assert!(graph[leaf].is_empty(), "{leaf} imports {:?}", graph[leaf]);
    }
    // The keys need the route table's paths (the dashboard's, the cookie's scope), nothing else.
    assert_eq!(
        graph["access"].iter().collect::<Vec<_>>(),
        ["routes"],
        "{graph:#?}"
    );
    for gateway_module in ["app", "edge", "state", "handlers", "upstream", "discovery"] {
        for demo in ["demo", "launcher"] {
            assert!(
                !graph[gateway_module].contains(demo),
                "{gateway_module} imports the demo's {demo}"
            );
        }
    }
}

#[test]
fn names_a_cycle_through_use_lines_inline_paths_and_re_exports() {
    let files = sources(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Thing;\n"),
        ("a.rs", "use crate::{\n    b::{self, B},\n};\n"),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", "fn f() -> crate::Thing { todo!() }\n"),
        (
            "c.rs",
            "// use crate::b; is only a comment\nstruct Thing;\nfn g() { let _ = super::a::X; }\n",
        ),
    ]);
    let cycle = find_cycle(&graph(&files)).expect("a -> b -> c -> a is a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

#[test]
fn ignores_paths_in_comments_strings_and_a_test_module_s_super() {
    let files = sources(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\n"),
        (
            "b.rs",
            concat!(
                "/// see [`crate::a`]\n",
                "const S: &str = \"crate::a\";\n",
                "const R: &str = r#\"crate::a \" \"#;\n",
                "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            ),
        ),
    ]);
    let graph = graph(&files);
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
    assert!(graph["b"].is_empty(), "{graph:#?}");
}
