//! A workload's manifest in a GitOps repository, and the one line a limit change edits: the
//! file is changed where the value is and nowhere else, so the commit's diff is that line and
//! a reviewer's comments, ordering and formatting stay as they were.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::kube::target::Workload;

/// Where a workload's manifest is: the file (relative to the repository) and the byte range
/// of its YAML document in that file.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub file: PathBuf,
    pub document: std::ops::Range<usize>,
}

/// The one document under `root` that is `w`'s manifest (its kind and name, and its namespace
/// when the document names one). Two candidates (a base and an overlay, two namespaces
/// without one named) are refused: which one the cluster syncs is not Vigil's guess.
pub fn find(repo: &Path, root: &Path, w: &Workload) -> Result<Found, String> {
    let mut files = Vec::new();
    collect(&repo.join(root), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for range in documents(&text) {
            let Ok(v) = serde_saphyr::from_str::<Value>(&text[range.clone()]) else {
                continue;
            };
            let matches = v["kind"] == w.kind.as_str()
                && v["metadata"]["name"] == w.name.as_str()
                && v["metadata"]["namespace"]
                    .as_str()
                    .is_none_or(|ns| ns == w.namespace);
            if matches {
                let rel = file
                    .strip_prefix(repo)
                    .map(Path::to_path_buf)
                    .map_err(|e| e.to_string())?;
                found.push(Found {
                    file: rel,
                    document: range,
                });
            }
        }
    }
    match found.as_slice() {
        [] => Err(format!(
            "no manifest of {w} under {} in the repository",
            root.display()
        )),
        [one] => Ok(one.clone()),
        many => Err(format!(
            "{} documents could be {w}'s manifest ({}): which one the cluster syncs is for a person to say",
            many.len(),
            many.iter()
                .map(|f| f.file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// The byte ranges of the YAML documents in `text` (split at `---` lines).
fn documents(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            out.push(start..at);
            start = at + line.len();
        }
        at += line.len();
    }
    out.push(start..text.len());
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `text` with `container`'s `limits.<resource>` set by `raise` (old value → new value), and
/// the old and new values; an error when the manifest sets no such limit.
pub fn set_limit(
    text: &str,
    container: &str,
    resource: &str,
    raise: impl Fn(&str) -> Option<String>,
) -> Result<(String, String, String), String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let names = |t: &str| {
        t == format!("name: {container}")
            || t == format!("name: \"{container}\"")
            || t == format!("name: '{container}'")
    };
    let missing = || format!("no limits.{resource} for container {container:?} in the manifest");
    // Past `containers:`, the container's list item: `- name: c`, or `name: c` among its keys.
    let list = lines
        .iter()
        .position(|l| l.trim() == "containers:")
        .ok_or_else(missing)?;
    let (start, item_indent) = lines
        .iter()
        .enumerate()
        .skip(list + 1)
        .find_map(|(i, l)| {
            let t = l.trim();
            match t.strip_prefix("- ") {
                Some(rest) if names(rest.trim()) => Some((i, indent(l))),
                None if names(t) => Some((i, indent(l).saturating_sub(2))),
                _ => None,
            }
        })
        .ok_or_else(missing)?;
    let mut limits: Option<usize> = None;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = indent(line);
        if at <= item_indent {
            break;
        }
        match limits {
            None if line.trim_start().starts_with("limits:") => limits = Some(at),
            Some(l) if at <= l => limits = None,
            Some(_) if line.trim_start().starts_with(&format!("{resource}:")) => {
                let (key, rest) = line.split_once(':').ok_or_else(missing)?;
                let value_part = rest.trim_end_matches('\n');
                let (value_text, comment) = match value_part.find(" #") {
                    Some(c) => value_part.split_at(c),
                    None => (value_part, ""),
                };
                let raw = value_text.trim();
                let quote = raw.chars().next().filter(|c| *c == '"' || *c == '\'');
                let old = raw.trim_matches(['"', '\'']).to_string();
                let new = raise(&old).ok_or_else(|| {
                    format!("limits.{resource} of {container:?} is {old:?}, not a quantity")
                })?;
                let written = match quote {
                    Some(q) => format!("{q}{new}{q}"),
                    None => new.clone(),
                };
                // The spaces around the value stay as they were.
                let lead = &value_text[..value_text.len() - value_text.trim_start().len()];
                let gap = &value_text[value_text.trim_end().len()..];
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                let mut out: String = lines[..i].concat();
                out.push_str(&format!("{key}:{lead}{written}{gap}{comment}{newline}"));
                out.push_str(&lines[i + 1..].concat());
                return Ok((out, old, new));
            }
            _ => {}
        }
    }
    Err(missing())
}

#[cfg(test)]
mod tests {
    use super::set_limit;

    const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\nspec:\n  template:\n    spec:\n      containers:\n        - name: sidecar\n          resources:\n            limits:\n              memory: 64Mi\n        - name: checkout\n          image: shop/checkout:1.5\n          resources:\n            requests:\n              memory: 256Mi\n            limits:\n              cpu: 500m\n              memory: \"512Mi\"  # sized for the 2025 price table\n";

    #[test]
    fn only_the_containers_limit_line_changes() {
        let (out, old, new) =
            set_limit(MANIFEST, "checkout", "memory", |_| Some("768Mi".into())).expect("edited");
        assert_eq!((old.as_str(), new.as_str()), ("512Mi", "768Mi"));
        assert_eq!(
            out,
            MANIFEST.replace("memory: \"512Mi\"  # sized", "memory: \"768Mi\"  # sized")
        );
    }

    #[test]
    fn a_limit_the_manifest_does_not_set_is_an_error_not_a_guess() {
        let e = set_limit(MANIFEST, "sidecar", "cpu", |_| Some("1".into())).expect_err("none");
        assert!(e.contains("no limits.cpu for container \"sidecar\""), "{e}");
        let e = set_limit(MANIFEST, "payments", "memory", |_| Some("1".into())).expect_err("none");
        assert!(e.contains("\"payments\""), "{e}");
    }
}
