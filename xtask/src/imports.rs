//! `cargo xtask check-imports`: the file-level import graph of every crate in the workspace,
//! and its cycles. Two files that import each other are one module in two files; the layout
//! (capability folders, ports beside them) only helps a reader if dependencies point one
//! way. A test runs the check over the workspace, so a cycle fails the suite.
//!
//! The parse is textual, which is enough for this code base: `use` trees and inline
//! `crate::…`/`super::…` paths, resolved to the deepest module file that exists, following
//! a `mod.rs`'s `pub use` to the file that defines the name. Test modules are left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

type ModPath = Vec<String>;

/// Every `.rs` file under `src`, by module path (`detection/service.rs` → `[detection,
/// service]`; `mod.rs`, `lib.rs` and `main.rs` name their folder).
fn module_files(src: &Path) -> anyhow::Result<BTreeMap<ModPath, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src)?.with_extension("");
                let mut segs: ModPath = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if segs
                    .last()
                    .is_some_and(|l| matches!(l.as_str(), "mod" | "lib" | "main"))
                {
                    segs.pop();
                }
                // A binary's own root (`bin/x.rs`) is a crate of its own: left out.
                if segs.first().is_some_and(|s| s == "bin") {
                    continue;
                }
                out.insert(segs, path);
            }
        }
    }
    Ok(out)
}

/// The code without comments, string literals and test modules.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
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
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal ('x', '\n', '"'); lifetimes ('a) have no closing quote.
            '\'' => {
                let mut look = chars.clone();
                let lit = match (look.next(), look.next(), look.next()) {
                    (Some('\\'), Some(_), Some('\'')) => 3,
                    (Some(_), Some('\''), _) => 2,
                    _ => 0,
                };
                for _ in 0..lit {
                    chars.next();
                }
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let prefix = tree[..open].trim_end_matches("::").trim();
        let inner = tree[open + 1..].trim_end().trim_end_matches('}');
        let mut out = Vec::new();
        for part in split_top(inner) {
            for e in expand(&part) {
                out.push(match (prefix.is_empty(), e.as_str()) {
                    (true, _) => e.clone(),
                    (false, "self") => prefix.to_string(),
                    (false, _) => format!("{prefix}::{e}"),
                });
            }
        }
        return out;
    }
    let path = tree.split(" as ").next().unwrap_or(tree).trim();
    vec![path.trim_end_matches("::self").to_string()]
}

/// Splits at the commas outside braces.
fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The `use` trees of a file, `pub` marked.
fn uses(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_word = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let public = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        rest = &rest[i + 4..];
        if !at_word {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        out.push((public, rest[..end].to_string()));
        rest = &rest[end + 1..];
    }
    out
}

/// `crate::…` and `super::…` paths written inline.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let word_start = rest[..i]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let tail = &rest[i..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path = tail[..len].trim_end_matches(':');
            // A bare `super`/`crate` is a use group's head (`use super::{a, b}`), which the
            // use trees already expand: as a path of its own it would point at the parent.
            if word_start && path.contains("::") {
                out.push(path.to_string());
            }
            rest = &tail[len.max(1)..];
        }
    }
    out
}

struct Crate {
    files: BTreeMap<ModPath, PathBuf>,
    /// Per file: name → module path it re-exports from (`pub use a::Name`).
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

impl Crate {
    fn read(src: &Path) -> anyhow::Result<Self> {
        let files = module_files(src)?;
        let mut codes = BTreeMap::new();
        for (m, path) in &files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            codes.insert(m.clone(), code(&text));
        }
        let mut reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>> = BTreeMap::new();
        for (m, code) in &codes {
            for (public, tree) in uses(code) {
                if !public {
                    continue;
                }
                for path in expand(&tree) {
                    let mut segs: Vec<String> = path.split("::").map(str::to_string).collect();
                    if segs.first().is_some_and(|s| s == "self") {
                        segs.remove(0);
                    }
                    if let Some(name) = segs.pop() {
                        let mut from = m.clone();
                        from.extend(segs);
                        reexports.entry(m.clone()).or_default().insert(name, from);
                    }
                }
            }
        }
        let mut krate = Self {
            files,
            reexports,
            edges: BTreeMap::new(),
        };
        for (m, code) in &codes {
            let mut paths: Vec<String> = uses(code)
                .into_iter()
                .flat_map(|(_, tree)| expand(&tree))
                .collect();
            paths.extend(inline_paths(code));
            let targets: BTreeSet<ModPath> = paths
                .iter()
                .filter_map(|p| krate.resolve(m, p))
                .filter(|t| t != m)
                .collect();
            krate.edges.insert(m.clone(), targets);
        }
        Ok(krate)
    }

    /// The file `path`, written in module `from`, points at.
    fn resolve(&self, from: &ModPath, path: &str) -> Option<ModPath> {
        let mut segs = path.split("::").filter(|s| !s.is_empty());
        let mut full: ModPath = match segs.next()? {
            "crate" => Vec::new(),
            "super" => from[..from.len().saturating_sub(1)].to_vec(),
            "self" => from.clone(),
            _ => return None,
        };
        let mut rest: Vec<&str> = segs.collect();
        while rest.first() == Some(&"super") {
            full.pop();
            rest.remove(0);
        }
        full.extend(rest.iter().map(|s| s.to_string()));
        for n in (0..=full.len()).rev() {
            let key = full[..n].to_vec();
            if !self.files.contains_key(&key) {
                continue;
            }
            if let Some(name) = full.get(n) {
                if let Some(target) = self.reexports.get(&key).and_then(|r| r.get(name)) {
                    if self.files.contains_key(target) && *target != key {
                        return Some(target.clone());
                    }
                }
            }
            return Some(key);
        }
        None
    }

    /// The groups of files that import each other (Tarjan's strongly connected components).
    fn cycles(&self) -> Vec<Vec<PathBuf>> {
        struct Walk<'a> {
            edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
            index: BTreeMap<&'a ModPath, usize>,
            low: BTreeMap<&'a ModPath, usize>,
            stack: Vec<&'a ModPath>,
            on_stack: BTreeSet<&'a ModPath>,
            found: Vec<Vec<&'a ModPath>>,
        }
        impl<'a> Walk<'a> {
            fn visit(&mut self, v: &'a ModPath) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.edges.get(v).into_iter().flatten() {
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let lw = self.low[w];
                        let lv = self.low.entry(v).or_insert(lw);
                        *lv = (*lv).min(lw);
                    } else if self.on_stack.contains(w) {
                        let iw = self.index[w];
                        let lv = self.low.entry(v).or_insert(iw);
                        *lv = (*lv).min(iw);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut group = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        group.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if group.len() > 1 {
                        self.found.push(group);
                    }
                }
            }
        }
        let mut walk = Walk {
            edges: &self.edges,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for v in self.files.keys() {
            if !walk.index.contains_key(v) {
                walk.visit(v);
            }
        }
        walk.found
            .into_iter()
            .map(|g| g.into_iter().map(|m| self.files[m].clone()).collect())
            .collect()
    }
}

/// Every crate's `src/` in the workspace.
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if !path.is_dir() || name == "target" || name == ".git" || name == "node_modules" {
                continue;
            }
            if name == "src" && path.parent().is_some_and(|p| p.join("Cargo.toml").exists()) {
                out.push(path);
            } else {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The import cycles in the workspace at `root`, as groups of files.
pub fn cycles(root: &Path) -> anyhow::Result<Vec<Vec<PathBuf>>> {
    let mut out = Vec::new();
    for src in crate_sources(root) {
        out.extend(Crate::read(&src)?.cycles());
    }
    Ok(out)
}

pub fn check(root: &Path) -> anyhow::Result<()> {
    let found = cycles(root)?;
    for group in &found {
        let names: Vec<String> = group
            .iter()
            .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
            .collect();
        println!("import cycle: {}", names.join(" <-> "));
    }
    anyhow::ensure!(
        found.is_empty(),
        "{} import cycle(s) between files: move what both sides need into a module of its own",
        found.len()
    );
    println!("no import cycles between files");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_group_head_is_not_an_import_of_the_parent() {
        assert_eq!(
            inline_paths("use super::{a::X, b};\nlet y = crate::c::f();"),
            ["crate::c::f"]
        );
    }

    #[test]
    fn use_trees_expand_to_paths() {
        assert_eq!(
            expand("crate::{a::{b, c as d}, e::self}"),
            ["crate::a::b", "crate::a::c", "crate::e"]
        );
        assert_eq!(expand("super::x"), ["super::x"]);
    }

    #[test]
    fn a_cycle_between_two_files_is_found_and_a_one_way_import_is_not() {
        let dir = std::env::temp_dir().join(format!("vigil-imports-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("m")).expect("dirs");
        std::fs::write(dir.join("Cargo.toml"), "").expect("manifest");
        std::fs::write(src.join("lib.rs"), "mod m;\nmod z;").expect("lib");
        std::fs::write(src.join("m/mod.rs"), "mod a;\nmod b;\npub use a::Thing;").expect("mod");
        std::fs::write(
            src.join("m/a.rs"),
            "use super::b::Other;\npub struct Thing;",
        )
        .expect("a");
        std::fs::write(
            src.join("m/b.rs"),
            "pub struct Other;\n// use super::a::Thing;",
        )
        .expect("b");
        std::fs::write(
            src.join("z.rs"),
            "use crate::m::Thing; // through the re-export",
        )
        .expect("z");
        assert!(
            cycles(&dir).expect("read").is_empty(),
            "one-way imports and a comment"
        );
        std::fs::write(
            src.join("m/b.rs"),
            "use crate::m::Thing;\npub struct Other;",
        )
        .expect("b");
        let found = cycles(&dir).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].len(), 2, "a.rs and b.rs: {found:?}");
    }

    #[test]
    fn the_workspace_has_no_import_cycles_between_files() {
        let root = crate::process::workspace_root();
        let found = cycles(&root).expect("the workspace sources");
        assert!(found.is_empty(), "import cycles: {found:#?}");
    }
}
