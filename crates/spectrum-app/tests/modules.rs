//! spectrum-app's top-level modules depend on each other without a circle:
//! every `crate::NAME` a module's code names (directly, or through a name
//! `lib.rs` re-exports from another module) is an edge, and the graph has no
//! cycle. A circle is where a change starts costing two modules at once;
//! what works on several (a run of either kind, the report over every
//! family) goes in a module above them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Identifiers in `text` (words of letters, digits and underscores).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The names a file's code takes from the crate root: `crate::NAME` and
/// `use crate::{A, B::C}` (the first segment of each path). Unit tests at the
/// end of a file are left out.
fn crate_names(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find("};").unwrap_or(group.len())];
            for path in body.split(',') {
                if let Some(first) = words(path).next() {
                    names.insert(first.to_string());
                }
            }
        } else if let Some(first) = words(rest).next() {
            names.insert(first.to_string());
        }
    }
    names
}

/// Which module each name `lib.rs` re-exports comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use ") else {
            continue;
        };
        let path = &statement[at + "pub use ".len()..];
        let mut segments = words(path);
        let Some(module) = segments.next() else {
            continue;
        };
        for name in segments {
            out.insert(name.to_string(), module.to_string());
        }
    }
    out
}

fn graph(src: &Path) -> Graph {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src").flatten() {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a name")
            .to_string();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            modules.insert(name, vec![path]);
        }
    }
    let exported = reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(file).expect("source");
            for name in crate_names(&text) {
                let target = if modules.contains_key(&name) {
                    Some(&name)
                } else {
                    exported.get(&name)
                };
                if let Some(target) = target.filter(|t| *t != module) {
                    let at = file.strip_prefix(src).unwrap_or(file).display();
                    edges
                        .entry(target.clone())
                        .or_default()
                        .insert(format!("{at} names crate::{name}"));
                }
            }
        }
    }
    graph
}

/// A path `from` -> ... -> `to`, if there is one.
fn path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut stack = vec![vec![from.to_string()]];
    while let Some(trail) = stack.pop() {
        let last = trail.last().expect("a trail");
        for next in graph.get(last).into_iter().flat_map(|e| e.keys()) {
            let mut longer = trail.clone();
            longer.push(next.clone());
            if next == to {
                return Some(longer);
            }
            if seen.insert(next.clone()) {
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn the_apps_modules_have_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    let mut circles = Vec::new();
    for (module, edges) in &graph {
        for (target, why) in edges {
            if let Some(back) = path(&graph, target, module) {
                let evidence: Vec<&String> = why.iter().take(2).collect();
                circles.push(format!("{module} -> {} ({evidence:?})", back.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_scan_finds_what_a_module_names() {
    let text = "use crate::{AppError, evaluation::family::Steer};\nfn f() { crate::runs::find_run(); }\n#[cfg(test)]\nmod tests { use crate::Hidden; }";
    let names = crate_names(text);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["AppError", "evaluation", "runs"]
    );
    let lib = "mod a;\npub use a::{One, Two};\npub use b::Three;\npub use c::d;";
    let found = reexports(lib);
    assert_eq!(found["One"], "a");
    assert_eq!(found["Three"], "b");
    assert_eq!(found["d"], "c");
    // A circle is found: a -> b -> a.
    let mut g = Graph::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), BTreeSet::new());
    g.entry("b".into())
        .or_default()
        .insert("a".into(), BTreeSet::new());
    assert_eq!(
        path(&g, "b", "a"),
        Some(vec!["b".to_string(), "a".to_string()])
    );
}
