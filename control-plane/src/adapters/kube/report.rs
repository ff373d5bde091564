//! `IncidentReport` (`vigil.dev/v1alpha1`): an incident as a Kubernetes object, so
//! `kubectl get incidentreports` and anything that watches the API (GitOps, chat bots,
//! dashboards) sees what Vigil sees. Vigil writes the ones it opens (spec and status, by
//! server-side apply); a person or another tool may create one (spec only) to hand Vigil an
//! incident, and Vigil answers in its status.

use kube::{
    api::{Patch, PatchParams},
    Api, CustomResource, Resource,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::incident::IncidentStatus;

/// The field manager of every write Vigil makes.
pub const FIELD_MANAGER: &str = "vigil-control-plane";
/// Label on reports Vigil created, with the incident id.
pub const INCIDENT_LABEL: &str = "vigil.dev/incident-id";

#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vigil.dev",
    version = "v1alpha1",
    kind = "IncidentReport",
    plural = "incidentreports",
    shortname = "ir",
    namespaced,
    doc = "An incident Vigil found or was handed: what went wrong and where (spec), and Vigil's verdict (status).",
    status = "IncidentReportStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".status.faultClass"}"#,
    printcolumn = r#"{"name":"Confidence","type":"number","jsonPath":".status.confidence"}"#,
    printcolumn = r#"{"name":"Route","type":"string","jsonPath":".status.route"}"#,
    printcolumn = r#"{"name":"Root cause","type":"string","jsonPath":".status.rootCause"}"#,
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".spec.severity"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReportSpec {
    /// What went wrong, in one line.
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// `warning` or `critical`.
    #[serde(default = "warning")]
    pub severity: String,
    /// The workload or service it is about, as Vigil names entities (`k8s-svc/shop/cart`,
    /// `cgroup/…`) or by a plain name Vigil matches (`cart`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// The node, when it matters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Who reported it: `vigil` for Vigil's own incidents, anything else for others.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

fn warning() -> String {
    "warning".into()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReportStatus {
    /// `Open` or `Resolved`; `Invalid` when a report Vigil was handed cannot be used.
    pub phase: String,
    /// Vigil's incident behind the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<i64>,
    /// The diagnosed fault class (`oom_kill`, `credential_failure`, `network_latency`, …, the
    /// taxonomy's ids); before a diagnosis, or when none was found, the incident's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fault_class: String,
    /// What opened the incident: `oom_kill`, `crash_loop`, `service_anomaly`, `alert`, …
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incident_kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_cause: String,
    /// Confidence in the diagnosis, 0–1; before one, in the root cause (1 when the kernel
    /// attributed it directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// `remediation` (confident enough to act on) or `review` (a human decides).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
    /// Why: the class, the strongest evidence, who disagreed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diagnosis: String,
    /// What to do for the diagnosed class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommended_actions: Vec<String>,
    /// The runbooks and postmortems the diagnosis cited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<ReportCitation>,
    /// Every step of the remediation actions taken or proposed, oldest first.
    #[serde(default)]
    pub actions: Vec<ReportAction>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub opened_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resolved_at: String,
}

/// One step of one remediation action.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportAction {
    /// Vigil's action id (`vigil approve <incident> <id>`).
    #[serde(default)]
    pub id: i64,
    /// The action class: `raise_memory_limit`, `rollback`, `evict_pod`, …
    pub action: String,
    /// `proposed`, `approved`, `applied`, `verified`, `escalated`, `rolled_back`, `refused`,
    /// `denied`, `expired` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub at: String,
    /// Who approved or denied it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// What the runtime did, or why it ended as it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A runbook or postmortem the diagnosis drew on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportCitation {
    pub id: String,
    pub title: String,
    /// `runbook` or `postmortem`.
    pub kind: String,
}

/// A report's phase for an incident's status.
pub fn phase(status: IncidentStatus) -> &'static str {
    match status {
        IncidentStatus::Open => "Open",
        IncidentStatus::Resolved => "Resolved",
    }
}

/// Server-side applies `status` to the report's status subresource, as Vigil's field manager.
pub async fn apply_status(
    api: &Api<IncidentReport>,
    name: &str,
    status: &serde_json::Value,
) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "apiVersion": IncidentReport::api_version(&()),
        "kind": IncidentReport::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
}

/// The CRD as YAML, for `vigil crdgen` and the committed manifest.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&IncidentReport::crd())
}
