//! Control-plane configuration: a TOML file, every field defaulted, unknown fields rejected.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::domain::{
    detection::{
        baseline::ThresholdRule, conformal::ConformalConfig, correlate::CorrelateConfig,
        forest::ForestConfig, likelihood::LikelihoodConfig, robust::RobustConfig,
        univariate::UnivariateConfig, DetectionConfig,
    },
    graph::GraphConfig,
    ingest::CrashLoopPolicy,
    pressure::{disk::DiskPolicy, rules::Limit, PressurePolicy},
};

mod api;
mod audit;
mod auth;
mod console;
mod detection;
mod diagnosis;
mod llm;
mod remediation;
mod slack;
mod tls;
mod vector;

pub use self::{
    api::ApiConfig,
    audit::AuditConfig,
    auth::AuthConfig,
    console::ConsoleConfig,
    detection::{DetectionSettings, FloorSetting},
    diagnosis::DiagnosisConfig,
    llm::LlmConfig,
    remediation::{RemediationConfig, RuntimeKind},
    slack::SlackConfig,
    tls::{ApiTls, GrpcTls, TlsConfig},
    vector::VectorConfig,
};
pub use vigil_config_file::{ConfigError, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    /// gRPC ingest from agents.
    pub grpc_listen: SocketAddr,
    /// REST API.
    pub http_listen: SocketAddr,
    /// SQLite file of the embedded store.
    pub store_path: PathBuf,
    pub ingest: IngestConfig,
    pub rules: RulesConfig,
    pub pressure: PressureConfig,
    pub certificates: CertificatesConfig,
    pub incidents: IncidentsConfig,
    pub graph: GraphSettings,
    pub kubernetes: KubernetesConfig,
    pub detection: DetectionSettings,
    pub diagnosis: DiagnosisConfig,
    pub audit: AuditConfig,
    pub auth: AuthConfig,
    pub remediation: RemediationConfig,
    /// Approvals asked for and outcomes told in Slack; none by default.
    pub slack: Option<SlackConfig>,
    pub otlp: OtlpConfig,
    pub console: ConsoleConfig,
    pub api: ApiConfig,
    pub tls: TlsConfig,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store_path: PathBuf::from("vigil.db"),
            ingest: IngestConfig::default(),
            rules: RulesConfig::default(),
            pressure: PressureConfig::default(),
            certificates: CertificatesConfig::default(),
            incidents: IncidentsConfig::default(),
            graph: GraphSettings::default(),
            kubernetes: KubernetesConfig::default(),
            detection: DetectionSettings::default(),
            diagnosis: DiagnosisConfig::default(),
            audit: AuditConfig::default(),
            auth: AuthConfig::default(),
            remediation: RemediationConfig::default(),
            slack: None,
            otlp: OtlpConfig::default(),
            console: ConsoleConfig::default(),
            api: ApiConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted gRPC message after decompression.
    pub max_message_bytes: usize,
    pub max_batch_events: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 << 20,
            max_batch_events: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Abnormal exits of a workload's main process that make a crash loop...
    pub crash_loop_restarts: u32,
    /// ...within this many seconds...
    pub crash_loop_window_secs: u64,
    /// ...of a service: a workload one of whose processes ran this long (containers always
    /// are). Short commands failing are not a crash loop.
    pub crash_loop_service_uptime_secs: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        let p = CrashLoopPolicy::default();
        Self {
            crash_loop_restarts: p.restarts,
            crash_loop_window_secs: p.window.as_secs(),
            crash_loop_service_uptime_secs: p.service_uptime.as_secs(),
        }
    }
}

/// Resource readings against fixed limits (see `domain::pressure`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PressureConfig {
    /// Working set over the memory limit that warns (before the OOM killer acts)...
    pub memory_limit_ratio: f64,
    /// ...once it held this long.
    pub memory_hold_secs: u64,
    /// Share of CPU quota periods throttled that warns...
    pub throttled_ratio: f64,
    /// ...once it held this long.
    pub throttled_hold_secs: u64,
    /// While it holds, the incident is updated this often.
    pub repeat_secs: u64,
    /// A filesystem this full warns...
    pub disk_used_ratio: f64,
    /// ...when its fill rate says it is full within this many hours (a full one is
    /// critical).
    pub disk_full_within_hours: u64,
    /// Readings the fill rate is fitted over.
    pub disk_trend_secs: u64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        let p = PressurePolicy::default();
        let d = DiskPolicy::default();
        Self {
            memory_limit_ratio: p.memory.ratio,
            memory_hold_secs: p.memory.hold.as_secs(),
            throttled_ratio: p.throttling.ratio,
            throttled_hold_secs: p.throttling.hold.as_secs(),
            repeat_secs: p.repeat.as_secs(),
            disk_used_ratio: d.used_ratio,
            disk_full_within_hours: d.full_within.as_secs() / 3600,
            disk_trend_secs: d.trend_window.as_secs(),
        }
    }
}

/// The certificates TLS endpoints serve (see `domain::certs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesConfig {
    /// Opt-in: handshake with every TLS server endpoint Vigil sees requests to (and those
    /// below) to read its certificate. Nothing but the handshake is sent.
    pub active_check: bool,
    /// How often every endpoint is checked.
    pub interval_secs: u64,
    /// Warn this many days before a certificate's end.
    pub warn_days: u64,
    /// `host:port` endpoints to check besides the ones seen serving TLS.
    pub endpoints: Vec<String>,
    /// Connect and handshake timeout per endpoint.
    pub timeout_ms: u64,
}

impl Default for CertificatesConfig {
    fn default() -> Self {
        Self {
            active_check: false,
            interval_secs: 300,
            warn_days: 14,
            endpoints: Vec::new(),
            timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// An open incident with no new evidence for this long is resolved.
    pub resolve_after_secs: u64,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            resolve_after_secs: 600,
        }
    }
}

/// The Kubernetes API: endpoint resolution, IncidentReports, leader election.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Watch Pods, Services and EndpointSlices (needs list/watch RBAC on them).
    pub enabled: bool,
    /// API server URL; empty: in-cluster service account, else `$KUBECONFIG`/~/.kube/config.
    pub api_server: String,
    /// Namespace of the IncidentReports and the Lease; empty: `$POD_NAMESPACE`, else `vigil`.
    pub namespace: String,
    /// Mirror incidents into IncidentReports and take reports others create.
    pub incident_reports: bool,
    /// Hold a Lease so that one replica acts; off: this replica always acts.
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_duration_secs: u64,
    /// The holder renews this long before the lease would expire.
    pub lease_grace_secs: u64,
    /// This replica's identity in the Lease; empty: `$POD_NAME`, else the host name.
    pub identity: String,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_server: String::new(),
            namespace: String::new(),
            incident_reports: true,
            leader_election: true,
            lease_name: "vigil-control-plane".into(),
            lease_duration_secs: 15,
            lease_grace_secs: 5,
            identity: String::new(),
        }
    }
}

impl KubernetesConfig {
    pub fn resolved_namespace(&self) -> String {
        non_empty(&self.namespace)
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "vigil".into())
    }

    pub fn resolved_identity(&self) -> String {
        non_empty(&self.identity)
            .or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "vigil-control-plane".into())
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// OpenTelemetry export (OTLP) of Vigil's metrics and of one trace per incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    pub enabled: bool,
    /// The collector: `http://host:4317` for gRPC, `http://host:4318` for HTTP (the
    /// `/v1/traces` and `/v1/metrics` paths are added).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// How often metrics are pushed.
    pub export_interval_ms: u64,
    pub timeout_ms: u64,
    /// `service.name` of the exported resource.
    pub service_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies.
    Http,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: OtlpProtocol::Grpc,
            export_interval_ms: 10_000,
            timeout_ms: 5_000,
            service_name: "vigil-control-plane".into(),
        }
    }
}

/// The service graph and the metric samples behind it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSettings {
    /// An edge not observed for this long leaves the graph.
    pub edge_ttl_secs: u64,
    /// Span of an edge's "recent" counters (current retransmit rate and RTT).
    pub recent_window_secs: u64,
    /// Metric samples older than this are deleted from the store.
    pub sample_retention_secs: u64,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            edge_ttl_secs: 300,
            recent_window_secs: 10,
            sample_retention_secs: 24 * 3600,
        }
    }
}

impl ControlPlaneConfig {
    pub fn graph_config(&self) -> GraphConfig {
        let ns = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 2_000_000_000) * 1_000_000_000;
        GraphConfig {
            edge_ttl_ns: ns(self.graph.edge_ttl_secs),
            recent_window_ns: ns(self.graph.recent_window_secs),
        }
    }

    pub fn detection_config(&self) -> DetectionConfig {
        let d = &self.detection;
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX / 1_000_000) * 1_000_000;
        let defaults = DetectionConfig::default();
        DetectionConfig {
            window_ns: ms(d.window_ms),
            grace_ns: ms(d.grace_ms),
            univariate: UnivariateConfig {
                robust: RobustConfig {
                    long: d.baseline_windows,
                    short: d.recent_windows,
                    min_history: d.learning_windows,
                    ..RobustConfig::default()
                },
                likelihood: Some(LikelihoodConfig {
                    history: d.baseline_windows,
                    min_history: d.learning_windows,
                    ..LikelihoodConfig::default()
                }),
                conformal: (d.shape_training_windows > 0).then_some(ConformalConfig {
                    dim: 6,
                    k: 10,
                    train: d.shape_training_windows,
                }),
            },
            rule: ThresholdRule {
                k: d.threshold_sigma,
                consecutive: d.consecutive_windows,
                // Checked by `validate`; a config that was not keeps the defaults.
                floors: d.floors().unwrap_or_default(),
                ..ThresholdRule::default()
            },
            forest: ForestConfig {
                min_training: d.forest_min_training,
                ..ForestConfig::default()
            },
            correlate: CorrelateConfig {
                resolve_windows: d.resolve_after_windows,
                cooldown_windows: d.reopen_within_windows,
            },
            ..defaults
        }
    }

    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        vigil_config_file::from_file(path)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        vigil_config_file::from_toml(text, origin)
    }

    /// Checks values serde cannot; `origin` names where they came from in errors.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| Err(ConfigError::invalid(origin, field, reason));
        self.diagnosis.validate(origin)?;
        self.api.validate(origin)?;
        self.tls
            .validate(origin, self.grpc_listen, self.http_listen)?;
        self.audit.validate(origin)?;
        self.remediation.validate(origin)?;
        if self.remediation.runtime == RuntimeKind::Kubernetes && !self.kubernetes.enabled {
            return invalid(
                "remediation.runtime",
                "\"kubernetes\" acts through the cluster Vigil watches: set kubernetes.enabled = true",
            );
        }
        if self.remediation.runtime == RuntimeKind::GitOps {
            if !self.kubernetes.enabled {
                return invalid(
                    "remediation.runtime",
                    "\"gitops\" finds a pod's workload through the cluster Vigil watches: set kubernetes.enabled = true",
                );
            }
            if self.remediation.gitops.is_none() {
                return invalid(
                    "remediation.gitops",
                    "\"gitops\" needs the repository: [remediation.gitops] repo = \"<path or URL>\"",
                );
            }
        }
        if let Some(slack) = &self.slack {
            slack.validate(origin)?;
        }
        if self.rules.crash_loop_restarts < 2 {
            return invalid(
                "rules.crash_loop_restarts",
                "must be at least 2 (one exit is not a loop)",
            );
        }
        if self.rules.crash_loop_window_secs == 0 {
            return invalid("rules.crash_loop_window_secs", "must be positive");
        }
        if self.certificates.active_check && self.certificates.interval_secs == 0 {
            return invalid("certificates.interval_secs", "must be positive");
        }
        if let Some(bad) = self.certificates.endpoints.iter().find(|e| {
            e.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            return invalid(
                "certificates.endpoints",
                &format!("{bad:?} is not host:port (e.g. \"api.example.com:443\")"),
            );
        }
        for (field, ratio) in [
            (
                "pressure.memory_limit_ratio",
                self.pressure.memory_limit_ratio,
            ),
            ("pressure.throttled_ratio", self.pressure.throttled_ratio),
            ("pressure.disk_used_ratio", self.pressure.disk_used_ratio),
        ] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return invalid(field, "must be a share in (0, 1], e.g. 0.85 for 85 %");
            }
        }
        if self.ingest.max_batch_events == 0 {
            return invalid("ingest.max_batch_events", "must be at least 1");
        }
        if self.ingest.max_message_bytes < 1024 {
            return invalid("ingest.max_message_bytes", "must be at least 1024");
        }
        if self.incidents.resolve_after_secs == 0 {
            return invalid("incidents.resolve_after_secs", "must be positive");
        }
        if self.kubernetes.enabled && self.kubernetes.leader_election {
            let k = &self.kubernetes;
            if k.lease_grace_secs == 0 || k.lease_grace_secs >= k.lease_duration_secs {
                return invalid(
                    "kubernetes.lease_grace_secs",
                    "must be positive and less than kubernetes.lease_duration_secs",
                );
            }
        }
        if self.otlp.enabled {
            if !(self.otlp.endpoint.starts_with("http://")
                || self.otlp.endpoint.starts_with("https://"))
            {
                return invalid(
                    "otlp.endpoint",
                    "must be an http:// or https:// URL of an OTLP collector",
                );
            }
            if self.otlp.export_interval_ms < 100 {
                return invalid("otlp.export_interval_ms", "must be at least 100");
            }
        }
        for (field, v) in [
            ("graph.edge_ttl_secs", self.graph.edge_ttl_secs),
            ("graph.recent_window_secs", self.graph.recent_window_secs),
            (
                "graph.sample_retention_secs",
                self.graph.sample_retention_secs,
            ),
        ] {
            if v == 0 || v > 10 * 365 * 24 * 3600 {
                return invalid(field, "must be between 1 second and 10 years");
            }
        }
        if !self.kubernetes.api_server.is_empty()
            && self.kubernetes.api_server.parse::<http::Uri>().is_err()
        {
            return invalid(
                "kubernetes.api_server",
                "is not a URL like https://host:6443",
            );
        }
        let d = &self.detection;
        if let Err((key, reason)) = d.floors() {
            return invalid("detection.floors", &format!("{key}: {reason}"));
        }
        if d.window_ms < 100 || d.window_ms > 3_600_000 {
            return invalid("detection.window_ms", "must be between 100 ms and 1 hour");
        }
        if d.learning_windows < 5 || d.learning_windows > d.baseline_windows {
            return invalid(
                "detection.learning_windows",
                "must be at least 5 and at most detection.baseline_windows",
            );
        }
        if d.recent_windows == 0 || d.recent_windows > d.learning_windows {
            return invalid(
                "detection.recent_windows",
                "must be at least 1 and at most detection.learning_windows",
            );
        }
        if !(d.threshold_sigma.is_finite() && d.threshold_sigma > 0.0) {
            return invalid("detection.threshold_sigma", "must be a positive number");
        }
        if d.consecutive_windows == 0 || d.resolve_after_windows <= 0 {
            return invalid(
                "detection.consecutive_windows",
                "and detection.resolve_after_windows must be at least 1",
            );
        }
        if d.shape_training_windows != 0 && d.shape_training_windows < 20 {
            return invalid(
                "detection.shape_training_windows",
                "must be 0 (off) or at least 20",
            );
        }
        if d.forest_min_training < 16 {
            return invalid("detection.forest_min_training", "must be at least 16");
        }
        if self.grpc_listen == self.http_listen && self.grpc_listen.port() != 0 {
            return invalid("http_listen", "must differ from grpc_listen");
        }
        Ok(())
    }

    pub fn pressure_policy(&self) -> PressurePolicy {
        let p = &self.pressure;
        PressurePolicy {
            memory: Limit {
                ratio: p.memory_limit_ratio,
                hold: Duration::from_secs(p.memory_hold_secs),
            },
            throttling: Limit {
                ratio: p.throttled_ratio,
                hold: Duration::from_secs(p.throttled_hold_secs),
            },
            repeat: Duration::from_secs(p.repeat_secs.max(1)),
        }
    }

    pub fn disk_policy(&self) -> DiskPolicy {
        let p = &self.pressure;
        DiskPolicy {
            used_ratio: p.disk_used_ratio,
            full_within: Duration::from_secs(p.disk_full_within_hours.saturating_mul(3600)),
            trend_window: Duration::from_secs(p.disk_trend_secs.max(1)),
            repeat: Duration::from_secs(p.repeat_secs.max(1)),
        }
    }

    pub fn crash_loop_policy(&self) -> CrashLoopPolicy {
        CrashLoopPolicy {
            restarts: self.rules.crash_loop_restarts,
            window: Duration::from_secs(self.rules.crash_loop_window_secs),
            service_uptime: Duration::from_secs(self.rules.crash_loop_service_uptime_secs),
        }
    }
}

impl Validate for ControlPlaneConfig {
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        ControlPlaneConfig::validate(self, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entity::SubjectClass;

    use vigil_config_file::error_chain as chain;

    #[test]
    fn the_gitops_runtime_needs_the_cluster_and_its_repository() {
        for (toml, says) in [
            (
                "[remediation]\nruntime = \"gitops\"\n[remediation.gitops]\nrepo = \"/srv/deploy.git\"\n",
                "set kubernetes.enabled = true",
            ),
            (
                "[kubernetes]\nenabled = true\n[remediation]\nruntime = \"gitops\"\n",
                "[remediation.gitops] repo",
            ),
            (
                "[kubernetes]\nenabled = true\n[remediation]\nruntime = \"gitops\"\n[remediation.gitops]\nrepo = \"x\"\nbranch = \"main\"\n",
                "branch",
            ),
        ] {
            let err = ControlPlaneConfig::from_toml(toml, "cp.toml").expect_err(toml);
            assert!(chain(&err).contains(says), "{toml}: {}", chain(&err));
        }
        let c = ControlPlaneConfig::from_toml(
            "[kubernetes]\nenabled = true\n[remediation]\nruntime = \"gitops\"\n[remediation.gitops]\nrepo = \"/srv/deploy.git\"\npath = \"apps\"\n",
            "cp.toml",
        )
        .expect("valid");
        let g = c.remediation.gitops.expect("the repository");
        assert_eq!(
            (g.base.as_str(), g.branch_prefix.as_str()),
            ("main", "vigil/")
        );
    }

    #[test]
    fn feature_floors_are_set_by_name_and_misspellings_refused() {
        let c = ControlPlaneConfig::from_toml(
            "[detection.floors.\"edge.request_p99_us\"]\nrelative_floor = 3.0\n\
             [detection.floors.\"edge.error_ratio\"]\nfloor = 0.1\n",
            "cp.toml",
        )
        .expect("valid floors");
        let rule = c.detection_config().rule;
        let index = |name: &str| {
            crate::domain::detection::features::features_of(SubjectClass::Edge)
                .iter()
                .position(|f| f.name == name)
                .expect("an edge feature")
        };
        assert_eq!(
            rule.floors.of(SubjectClass::Edge, index("request_p99_us")),
            (10_000.0, 3.0)
        );
        assert_eq!(
            rule.floors.of(SubjectClass::Edge, index("error_ratio")),
            (0.1, 2.0)
        );
        for (toml, says) in [
            (
                "[detection.floors.\"edge.p99\"]\nfloor = 1.0\n",
                "edge.request_p99_us",
            ),
            (
                "[detection.floors.\"p99\"]\nfloor = 1.0\n",
                "edge.<feature>",
            ),
            (
                "[detection.floors.\"edge.error_ratio\"]\nfloor = -1.0\n",
                "non-negative",
            ),
            (
                "[detection.floors.\"edge.error_ratio\"]\nflor = 1.0\n",
                "flor",
            ),
        ] {
            let err = ControlPlaneConfig::from_toml(toml, "cp.toml").expect_err(toml);
            assert!(chain(&err).contains(says), "{toml}: {}", chain(&err));
        }
    }

    #[test]
    fn full_file_parses() {
        let c = ControlPlaneConfig::from_toml(
            "grpc_listen = \"0.0.0.0:7070\"\nstore_path = \"/var/lib/vigil/vigil.db\"\n[rules]\ncrash_loop_restarts = 5\n\
             [tls.grpc]\ncert_file = \"cp.pem\"\nkey_file = \"cp.key\"\nclient_ca_file = \"ca.pem\"\n",
            "cp.toml",
        )
        .expect("valid");
        assert_eq!(c.crash_loop_policy().restarts, 5);
    }

    #[test]
    fn plaintext_off_loopback_is_refused_unless_allowed() {
        let e = ControlPlaneConfig::from_toml("grpc_listen = \"0.0.0.0:7070\"\n", "cp.toml")
            .expect_err("plaintext ingest on every address");
        let msg = chain(&e);
        assert!(
            msg.contains("grpc_listen") && msg.contains("[tls.grpc]"),
            "{msg}"
        );
        let e = ControlPlaneConfig::from_toml("http_listen = \"10.0.0.1:8080\"\n", "cp.toml")
            .expect_err("plaintext API off loopback");
        assert!(chain(&e).contains("[tls.api]"), "{}", chain(&e));
        ControlPlaneConfig::from_toml(
            "grpc_listen = \"0.0.0.0:7070\"\nhttp_listen = \"0.0.0.0:8080\"\n[tls]\nallow_plaintext = true\n",
            "cp.toml",
        )
        .expect("explicitly allowed");
        ControlPlaneConfig::from_toml("grpc_listen = \"[::1]:7070\"\n", "cp.toml")
            .expect("loopback");
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = ControlPlaneConfig::from_toml("[rules]\ncrash_loop_restart = 5\n", "cp.toml")
            .expect_err("typo");
        let msg = chain(&e);
        assert!(
            msg.contains("cp.toml") && msg.contains("crash_loop_restart"),
            "{msg}"
        );
        let e = ControlPlaneConfig::from_toml("grpc_listen = \"nope\"\n", "cp.toml")
            .expect_err("bad addr");
        assert!(chain(&e).contains("grpc_listen"), "{e}");
        let e = ControlPlaneConfig::from_toml("[rules]\ncrash_loop_restarts = 1\n", "cp.toml")
            .expect_err("too low");
        assert!(chain(&e).contains("rules.crash_loop_restarts"), "{e}");
    }
}
