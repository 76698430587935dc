//! The codebase's own rules, checked on its source: every file opens with a
//! `//!` paragraph saying what it owns; no import cycles, neither between
//! top-level modules nor between sibling files of one module; `// SAFETY:`
//! before every unsafe block; hyper only under `src/http`, `v4l` only in
//! `capture::v4l2` (and `probe`, which reports what it found), and the
//! test-only fault injection reached only through `crate::faults`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// `src/record/store.rs` -> `["record", "store"]`; `src/http/mod.rs` -> `["http"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The code without its unit-test module and comments (references in tests
/// and prose are not dependencies).
fn code_of(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths a file refers to through `crate::` and `super::`.
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty())
            .collect()
    };
    // `super` is the module one up, for a mod.rs as for any other file.
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            rest = after;
            if let Some(inner) = after.strip_prefix('{') {
                let close = inner.find('}').unwrap_or(inner.len());
                for item in inner[..close].split(',') {
                    let path = ident(item.trim());
                    if !path.is_empty() {
                        out.push([base.clone(), path].concat());
                    }
                }
            } else {
                let path = ident(after);
                if !path.is_empty() {
                    out.push([base.clone(), path].concat());
                }
            }
        }
    }
    out
}

struct Tree {
    /// Module path -> file, for every file under src/.
    files: BTreeMap<Vec<String>, PathBuf>,
    /// Module path -> the modules it refers to (resolved to files).
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn tree() -> Tree {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .filter(|p| !p.ends_with("main.rs"))
        .map(|p| (module_of(&src, p), p.clone()))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut to = BTreeSet::new();
        for r in references(&code_of(&text), module) {
            // The longest prefix that is a file of ours.
            let target = (1..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| files.contains_key(p));
            if let Some(t) = target
                && &t != module
            {
                to.insert(t);
            }
        }
        edges.insert(module.clone(), to);
    }
    Tree { files, edges }
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let t = tree();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &t.edges {
        let Some(top) = from.first() else { continue };
        let entry = graph.entry(top.clone()).or_default();
        for to in tos {
            if let Some(other) = to.first()
                && other != top
            {
                entry.insert(other.clone());
            }
        }
    }
    assert_eq!(
        find_cycle(&graph),
        None,
        "top-level modules import each other"
    );
}

#[test]
fn no_import_cycles_between_sibling_files() {
    let t = tree();
    // Within each module directory: its files, minus the edges from a
    // mod.rs down to its own children (the facade that declares them).
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &t.edges {
        let name = from.join("::");
        let entry = graph.entry(name).or_default();
        for to in tos {
            let down_to_child = to.len() > from.len() && to.starts_with(from);
            if !down_to_child && from.len() > 1 && to.len() > 1 && from[0] == to[0] {
                entry.insert(to.join("::"));
            }
        }
    }
    assert_eq!(find_cycle(&graph), None, "files import each other");
}

#[test]
fn every_file_says_what_it_owns() {
    let t = tree();
    for file in t.files.values() {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not open with a //! paragraph",
            file.display()
        );
    }
}

#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let t = tree();
    for file in t.files.values() {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !code.contains("unsafe {") && !code.contains("unsafe{") {
                continue;
            }
            let before = &lines[i.saturating_sub(8)..i];
            assert!(
                before.iter().any(|l| l.contains("// SAFETY:")) || line.contains("// SAFETY:"),
                "{}:{}: unsafe block without a // SAFETY: comment",
                file.display(),
                i + 1
            );
        }
    }
}

#[test]
fn heavy_dependencies_stay_behind_their_modules() {
    let t = tree();
    for (module, file) in &t.files {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let uses = |krate: &str| {
            code.contains(&format!("use {krate}::"))
                || code.contains(&format!(" {krate}::"))
                || code.contains(&format!("({krate}::"))
        };
        if uses("hyper") || uses("http_body_util") || uses("smol_hyper") {
            assert_eq!(
                module.first().map(String::as_str),
                Some("http"),
                "{} uses hyper",
                file.display()
            );
        }
        if uses("v4l") {
            assert!(
                module == &["capture", "v4l2"] || module == &["probe"],
                "{} uses v4l",
                file.display()
            );
        }
        if code.contains("BLACKBOX_FAULTS") || code.contains("BLACKBOX_TEST_") {
            assert_eq!(
                module,
                &["faults"],
                "{} reads a test hook outside crate::faults",
                file.display()
            );
        }
    }
}
