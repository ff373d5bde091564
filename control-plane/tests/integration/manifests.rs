//! The Kubernetes manifests in `deploy/daemonset/` cannot ship a typo: every object is read
//! into its k8s-openapi type and written back, and any field that did not survive the round
//! trip (unknown or misspelled) fails the test with its path. Kustomizations must name files
//! that exist; overlay patches are merged into their base object and checked the same way.
//! The committed CRD must equal what `vigil crdgen` prints, and the control plane's config in
//! its ConfigMap must load.

use std::path::{Path, PathBuf};

use control_plane::{adapters::kube::report::crd_yaml, config::ControlPlaneConfig};
use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/daemonset")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read deploy dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

/// Paths present in `original` and missing after the typed round trip.
fn lost_fields(original: &Value, typed: &Value, path: &str, lost: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match t.get(k) {
                    Some(tv) => lost_fields(v, tv, &p, lost),
                    None => lost.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                lost_fields(ov, tv, &format!("{path}[{i}]"), lost);
            }
        }
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Vec<String>, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    lost_fields(doc, &back, "", &mut lost);
    Ok(lost)
}

/// Unknown or misspelled fields of one object, by its kind.
fn check(doc: &Value) -> Result<Vec<String>, String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    match (api, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(doc),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)
        }
        ("cert-manager.io/v1", "Issuer") => round_trip::<crate::cert_manager::Issuer>(doc),
        ("cert-manager.io/v1", "Certificate") => {
            round_trip::<crate::cert_manager::Certificate>(doc)
        }
        _ => Err(format!(
            "no validator for {api}/{kind}: add its k8s-openapi type to this test"
        )),
    }
}

/// A strategic-merge patch, as kustomize applies the ones used here: maps merge, lists of
/// named items merge by name, other values replace.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if p.iter().all(|i| i["name"].is_string()) => {
            for item in p {
                match b.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(slot) => merge(slot, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read manifest");
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["kind"] == b["kind"] && a["metadata"]["name"] == b["metadata"]["name"]
}

#[test]
fn every_manifest_is_valid_kubernetes() {
    let root = deploy_dir();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    let mut patches = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            let k = &docs(file)[0];
            let dir = file.parent().expect("dir");
            let listed = k["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    k["patches"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| &p["path"]),
                )
                .chain(
                    k["configMapGenerator"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|g| g["files"].as_array().into_iter().flatten()),
                );
            for entry in listed {
                let rel = entry.as_str().unwrap_or_default();
                let target = dir.join(rel);
                let ok = target.is_file() || target.join("kustomization.yaml").is_file();
                if !ok {
                    problems.push(format!("{name}: lists {rel:?}, which does not exist"));
                }
            }
            for p in k["patches"].as_array().into_iter().flatten() {
                if let Some(rel) = p["path"].as_str() {
                    patches.push(dir.join(rel));
                }
            }
            continue;
        }
        for doc in docs(file) {
            objects.push((name.clone(), doc));
        }
    }
    // Patches are partial objects: check them merged into the object they patch.
    let patch_names: Vec<String> = patches
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    let (patch_objects, base_objects): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|(name, _)| patch_names.iter().any(|p| p == name));
    for (name, patch) in &patch_objects {
        match base_objects.iter().find(|(_, b)| same_object(b, patch)) {
            Some((_, base)) => {
                let mut merged = base.clone();
                merge(&mut merged, patch);
                match check(&merged) {
                    Ok(lost) if lost.is_empty() => {}
                    Ok(lost) => problems.push(format!("{name} (merged): unknown fields {lost:?}")),
                    Err(e) => problems.push(format!("{name} (merged): {e}")),
                }
            }
            None => problems.push(format!("{name}: patches no object of the base")),
        }
    }
    for (name, doc) in &base_objects {
        kinds.insert(doc["kind"].as_str().unwrap_or_default().to_string());
        match check(doc) {
            Ok(lost) if lost.is_empty() => {}
            Ok(lost) => problems.push(format!(
                "{name}: {} {}: unknown or misspelled fields {lost:?}",
                doc["kind"], doc["metadata"]["name"]
            )),
            Err(e) => problems.push(format!(
                "{name}: {} {}: {e}",
                doc["kind"], doc["metadata"]["name"]
            )),
        }
        if doc["kind"] == "ConfigMap" {
            if let Some(toml) = doc["data"]["control-plane.toml"].as_str() {
                if let Err(e) = ControlPlaneConfig::from_toml(toml, name)
                    .and_then(|c| c.validate(name).map(|()| c))
                {
                    problems.push(format!("{name}: control-plane.toml: {e}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for wanted in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "DaemonSet",
        "Deployment",
        "Service",
        "ConfigMap",
        "PersistentVolumeClaim",
        "CustomResourceDefinition",
    ] {
        assert!(kinds.contains(wanted), "no {wanted} in {kinds:?}");
    }
}

#[test]
fn the_validator_catches_a_misspelled_field() {
    let doc: Value = serde_saphyr::from_str(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    spec:\n      hostPid: true\n      containers: [{name: c, image: i, imagePullPolice: Always}]\n",
    )
    .expect("yaml");
    let lost = check(&doc).expect("a DaemonSet");
    assert_eq!(
        lost,
        [
            ".spec.template.spec.containers[0].imagePullPolice",
            ".spec.template.spec.hostPid"
        ]
    );
}

#[test]
fn committed_crd_matches_crdgen() {
    let committed = std::fs::read_to_string(deploy_dir().join("base/crd-incidentreports.yaml"))
        .expect("the committed CRD");
    let generated = crd_yaml().expect("crdgen");
    assert!(
        committed == generated,
        "deploy/daemonset/base/crd-incidentreports.yaml is stale: run \
         `cargo run -p control-plane --bin vigil -- crdgen > deploy/daemonset/base/crd-incidentreports.yaml`"
    );
}
