//! A corpus file: YAML front matter between two `---` lines, then the markdown body.
//!
//! ```text
//! ---
//! id: runbook-oom-kill
//! kind: runbook
//! title: A container was OOM-killed
//! classes: [oom_kill]
//! services: []
//! severity: critical
//! date: 2026-12-01
//! ---
//! # What it means ...
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::{
    diagnose::FaultClass,
    retrieve::{ports::CorpusError, DocKind, Document},
};

#[derive(Debug, Serialize, Deserialize)]
struct FrontMatter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    kind: String,
    title: String,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date: Option<String>,
}

/// A file name for an id: what is not alphanumeric, `-` or `_` becomes `-`.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn parse(path: &Path, text: &str) -> Result<Document, CorpusError> {
    let malformed = |detail: String| CorpusError::Malformed {
        path: path.display().to_string(),
        detail,
    };
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(|| {
            malformed("no front matter: the file must start with a `---` line".into())
        })?;
    let (yaml, body) = rest
        .split_once("\n---\n")
        .or_else(|| rest.split_once("\n---\r\n"))
        .or_else(|| rest.strip_suffix("\n---").map(|y| (y, "")))
        .ok_or_else(|| malformed("the front matter is not closed by a `---` line".into()))?;
    let fm: FrontMatter = serde_saphyr::from_str(yaml).map_err(|e| malformed(e.to_string()))?;
    let kind = DocKind::parse(&fm.kind).ok_or_else(|| {
        malformed(format!(
            "kind `{}` is neither `runbook` nor `postmortem`",
            fm.kind
        ))
    })?;
    let classes = fm
        .classes
        .iter()
        .map(|c| {
            FaultClass::parse(c).ok_or_else(|| {
                malformed(format!(
                    "class `{c}` is not in the taxonomy (one of: {})",
                    FaultClass::ids()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let id = match fm.id {
        Some(id) if !id.trim().is_empty() => id,
        _ => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| malformed("no id, and no file name to take one from".into()))?,
    };
    Ok(Document {
        id,
        kind,
        title: fm.title,
        classes,
        services: fm.services,
        severity: fm.severity,
        date: fm.date,
        body: body.to_string(),
    })
}

pub fn render(doc: &Document) -> Result<String, CorpusError> {
    let fm = FrontMatter {
        id: Some(doc.id.clone()),
        kind: doc.kind.as_str().to_string(),
        title: doc.title.clone(),
        classes: doc.classes.iter().map(|c| c.id().to_string()).collect(),
        services: doc.services.clone(),
        severity: doc.severity.clone(),
        date: doc.date.clone(),
    };
    let yaml = serde_saphyr::to_string(&fm).map_err(|e| CorpusError::Write {
        path: doc.id.clone(),
        detail: e.to_string(),
    })?;
    Ok(format!("---\n{}\n---\n{}", yaml.trim_end(), doc.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_survives_render_and_parse() {
        let doc = Document {
            id: "postmortem-incident-7".into(),
            kind: DocKind::Postmortem,
            title: "Redis: password: refused".into(),
            classes: vec![FaultClass::CredentialFailure],
            services: vec!["cgroup/app".into()],
            severity: Some("critical".into()),
            date: Some("2026-12-01".into()),
            body: "# Body\n\ntext\n".into(),
        };
        let text = render(&doc).expect("render");
        assert_eq!(parse(Path::new("x.md"), &text).expect("parse"), doc);
    }

    #[test]
    fn bad_front_matter_is_named() {
        let no_fm = parse(Path::new("a.md"), "# just text\n").expect_err("no front matter");
        assert!(
            no_fm.to_string().contains("a.md") && no_fm.to_string().contains("---"),
            "{no_fm}"
        );
        let bad_class = parse(
            Path::new("b.md"),
            "---\nkind: runbook\ntitle: t\nclasses: [oom]\n---\nbody\n",
        )
        .expect_err("unknown class");
        assert!(
            bad_class.to_string().contains("`oom`") && bad_class.to_string().contains("oom_kill"),
            "{bad_class}"
        );
        let bad_kind =
            parse(Path::new("c.md"), "---\nkind: memo\ntitle: t\n---\n").expect_err("kind");
        assert!(bad_kind.to_string().contains("memo"), "{bad_kind}");
    }

    #[test]
    fn the_file_name_is_the_id_when_none_is_given() {
        let d = parse(
            Path::new("/c/runbooks/oom.md"),
            "---\nkind: runbook\ntitle: t\n---\nb",
        )
        .expect("parse");
        assert_eq!(d.id, "oom");
    }
}
