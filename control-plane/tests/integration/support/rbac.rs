//! The RBAC shipped in `deploy/` checked against the requests a test's control plane sent.

use serde_json::Value;

use super::apiserver::Recorded;

/// The control plane's RBAC with the remediation overlay's: what an acting control plane has.
pub const WITH_REMEDIATION: [&str; 2] = [
    "base/control-plane-rbac.yaml",
    "overlays/remediation/remediation-rbac.yaml",
];

/// Every request is allowed by the ClusterRoles and Roles in `files` (under
/// `deploy/daemonset/`).
pub fn assert_rbac_allows(requests: &[Recorded], files: &[&str]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/daemonset");
    let docs: Vec<Value> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).expect("the shipped RBAC");
            serde_saphyr::from_multiple::<Value>(&text).expect("YAML")
        })
        .collect();
    // (namespace it is limited to, rule)
    let rules: Vec<(Option<String>, Value)> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| {
            let ns = (d["kind"] == "Role").then(|| {
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            d["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |r| (ns.clone(), r.clone()))
        })
        .collect();
    let has =
        |list: &Value, item: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == item));
    let mut denied = Vec::new();
    for r in requests {
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _, rest @ ..] => ("", rest),
            ["apis", g, _, rest @ ..] => (*g, rest),
            _ => continue,
        };
        let (ns, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            r => (None, r),
        };
        let (resource, named) = match rest {
            [plural] => (plural.to_string(), false),
            [plural, _] => (plural.to_string(), true),
            [plural, _, sub] => (format!("{plural}/{sub}"), true),
            _ => continue,
        };
        let verb = match (r.method.as_str(), named) {
            ("GET", true) => "get",
            ("GET", false) if r.query.contains("watch=true") || r.query.contains("watch=1") => {
                "watch"
            }
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", _) => "delete",
            _ => "unknown",
        };
        let allowed = rules.iter().any(|(limit, rule)| {
            limit.as_deref().is_none_or(|l| Some(l) == ns)
                && has(&rule["apiGroups"], group)
                && has(&rule["resources"], &resource)
                && has(&rule["verbs"], verb)
        });
        if !allowed {
            denied.push(format!(
                "{verb} {group}/{resource} in {ns:?} ({} {})",
                r.method, r.path
            ));
        }
    }
    assert!(denied.is_empty(), "the shipped RBAC denies: {denied:#?}");
}
