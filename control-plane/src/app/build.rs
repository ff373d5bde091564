//! Building the control plane's parts from its config: the store, the use cases and the
//! exporters, each a named field so nothing is wired to the wrong port by position.

use std::{sync::Arc, time::Duration};

use super::error::AppError;
use crate::{
    adapters::{
        access::token_file,
        audit_key::KeyFile,
        corpus::{seed, FsCorpus},
        kube::fleet::KubeFleet,
        llm::{ApiKey, HttpChat},
        logs::FileLogs,
        otlp::OtlpExporter,
        pgvector::{embeddings::Embeddings, PgVector},
        playbooks,
        prometheus::PrometheusExporter,
        runtime::{
            local::{Supervisor, SupervisorFleet},
            GitOpsRuntime, KubeRuntime, LocalRuntime,
        },
        slack::{SecretUrl, SigningSecret, SlackNotifier},
        sqlite::SqliteStore,
        tls_probe::TlsProbe,
    },
    config::{ControlPlaneConfig, LlmConfig, RuntimeKind, SlackConfig, VectorConfig},
    domain::{
        access::Access,
        alerts::AlertService,
        audit::{AuditLog, AuditParts, AuditTrail},
        certs::{service::CertificateParts, CertPolicy, CertificateService},
        clock::Clock,
        detection::{DetectionParts, DetectionService},
        diagnose::{
            llm::{ChatModel, SecondOpinion},
            ports::{ChangeSource, FirstLogs, LogSource, NoChanges, Sources},
            tools::Registry,
            DiagnosisParts, DiagnosisPolicy, DiagnosisService,
        },
        graph::{
            ports::{EndpointResolver, NoCluster},
            LiveGraph,
        },
        incident::{observed::ObservedIncidents, ports::IncidentStore},
        ingest::{IngestParts, IngestService, KernelRules},
        interval::service::MetricsService,
        observe::{Observer, Observers},
        pressure::PressureService,
        remediate::{
            ports::{FleetView, NoRuntime, Runtime, TargetLock},
            GraphFleet, RemediationParts, RemediationService,
        },
        retrieve::{ports::Corpus, service::Learner, Retriever},
    },
};

/// Every part of a running control plane but its listeners and background tasks.
pub struct ControlPlane {
    pub store: Arc<SqliteStore>,
    pub clock: Arc<dyn Clock>,
    /// Every exporter that is on; the Kubernetes mirror joins once the cluster is reached.
    pub observers: Arc<Observers>,
    /// The store as the use cases write incidents: each change reported to `observers`.
    pub incidents: Arc<dyn IncidentStore>,
    pub ingest: Arc<IngestService>,
    pub graph: Arc<LiveGraph>,
    pub metrics: Arc<MetricsService>,
    /// `None` when `detection.enabled` is off.
    pub detection: Option<Arc<DetectionService>>,
    pub alerts: Arc<AlertService>,
    /// Every incident that opens or changes is diagnosed from the evidence.
    pub diagnosis: Arc<DiagnosisService>,
    /// Runbooks and postmortems: cited by diagnoses, written to when incidents resolve.
    pub corpus: Arc<dyn Corpus>,
    /// Every step taken on an incident, chained and signed.
    pub audit: Arc<AuditLog>,
    /// Who may call the API, by their tokens.
    pub access: Arc<Access>,
    /// Diagnoses routed to remediation: their playbooks' actions, judged, run, verified.
    pub remediation: Arc<RemediationService>,
    /// Slack notifications, and the signing secret its buttons' callbacks are checked with.
    pub slack: Option<Slack>,
    pub prometheus: Arc<PrometheusExporter>,
    /// `None` unless `certificates.active_check` is on.
    pub certificates: Option<Arc<CertificateService>>,
    pub otlp: Option<Arc<OtlpExporter>>,
}

/// What the control plane reads from a cluster: who is behind an address, and for diagnosis
/// the pods' logs and their Deployments' rollouts.
pub struct Slack {
    pub notifier: Arc<SlackNotifier>,
    pub secret: Option<Arc<SigningSecret>>,
    /// Slack user IDs whose presses are taken.
    pub approvers: Arc<std::collections::BTreeSet<String>>,
    pub max_age_secs: i64,
}

pub struct ClusterReads {
    pub resolver: Arc<dyn EndpointResolver>,
    /// Asked after the files `[diagnosis.logs]` names.
    pub logs: Option<Arc<dyn LogSource>>,
    pub changes: Arc<dyn ChangeSource>,
    /// Where `[remediation] runtime = "kubernetes"` acts (and how `"gitops"` finds a pod's
    /// workload).
    pub runtime: Option<Arc<KubeRuntime>>,
    /// One remediation per target across replicas (a Lease per target).
    pub lock: Option<Arc<dyn TargetLock>>,
    /// The cluster's pods: a pod's replicas, health, namespace and labels for the guardrails.
    pub pods: Option<kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>>,
}

impl ClusterReads {
    /// No cluster: addresses stay addresses, no pod logs, no rollouts.
    pub fn none() -> Self {
        Self {
            resolver: Arc::new(NoCluster),
            logs: None,
            changes: Arc::new(NoChanges),
            runtime: None,
            lock: None,
            pods: None,
        }
    }
}

impl ControlPlane {
    /// Opens the store and builds the use cases; the graph is replayed from stored intervals
    /// so a restarted control plane serves the graph it had.
    pub fn build(
        config: &ControlPlaneConfig,
        cluster: ClusterReads,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        let store = Arc::new(SqliteStore::open(&config.store_path)?);
        let observers = Arc::new(Observers::default());
        let observer: Arc<dyn Observer> = observers.clone();
        let incidents: Arc<dyn IncidentStore> =
            Arc::new(ObservedIncidents::new(store.clone(), observer.clone()));
        let ingest = Arc::new(
            IngestService::new(IngestParts {
                events: store.clone(),
                incidents: incidents.clone(),
                nodes: store.clone(),
                rules: KernelRules::new(config.crash_loop_policy()),
                clock: clock.clone(),
            })
            .with_observer(observer.clone()),
        );
        let graph = Arc::new(LiveGraph::new(config.graph_config(), cluster.resolver));
        let detection = if config.detection.enabled {
            Some(Arc::new(
                DetectionService::new(DetectionParts {
                    config: config.detection_config(),
                    incidents: incidents.clone(),
                    baselines: store.clone(),
                    graph: graph.clone(),
                    clock: clock.clone(),
                })?
                .with_observer(observer.clone()),
            ))
        } else {
            None
        };
        let mut metrics = MetricsService::new(store.clone())
            .with_observer(observer)
            .with_sink(graph.clone());
        if let Some(d) = &detection {
            metrics = metrics.with_sink(d.clone());
        }
        let pressure = Arc::new(PressureService::new(
            config.pressure_policy(),
            config.disk_policy(),
            incidents.clone(),
        ));
        metrics = metrics.with_sink(pressure.clone());
        let certificates = config.certificates.active_check.then(|| {
            let c = &config.certificates;
            Arc::new(CertificateService::new(CertificateParts {
                probe: Arc::new(TlsProbe::new(Duration::from_millis(c.timeout_ms))),
                incidents: incidents.clone(),
                graph: graph.clone(),
                clock: clock.clone(),
                policy: CertPolicy {
                    warn_before: Duration::from_secs(c.warn_days * 86_400),
                },
                configured: c.endpoints.clone(),
                max_endpoints: 1024,
            }))
        });
        if let Some(c) = &certificates {
            metrics = metrics.with_sink(c.clone());
        }
        let metrics = Arc::new(metrics);
        let since = clock.now_unix_ns() - graph.config().edge_ttl_ns;
        metrics.replay(since, graph.as_ref())?;
        let alerts = Arc::new(AlertService::new(
            incidents.clone(),
            store.clone(),
            graph.clone(),
            clock.clone(),
        ));
        let audit = Arc::new(AuditLog::open(AuditParts {
            store: store.clone(),
            signer: Arc::new(KeyFile::load_or_create(
                &config.audit.key_path(&config.store_path),
            )?),
            clock: clock.clone(),
            policy: config.audit.policy(),
        })?);
        observers.add(Arc::new(AuditTrail::new(audit.clone())));
        let access = access(config, store.clone(), audit.clone(), clock.clone())?;
        let corpus_dir = config.diagnosis.corpus_dir(&config.store_path);
        let corpus: Arc<dyn Corpus> = match &config.diagnosis.vector {
            None => Arc::new(FsCorpus::open(&corpus_dir)?),
            Some(v) => Arc::new(FsCorpus::with_index(&corpus_dir, vector_index(v)?)?),
        };
        seed::seed(&corpus_dir)?;
        observers.add(Arc::new(Learner::new(corpus.clone())));
        let mut diagnosis = DiagnosisService::new(DiagnosisParts {
            sources: Sources {
                events: store.clone(),
                samples: store.clone(),
                graph: graph.clone(),
                logs: Arc::new(FirstLogs(
                    std::iter::once(Arc::new(FileLogs::new(config.diagnosis.logs.clone()))
                        as Arc<dyn LogSource>)
                    .chain(cluster.logs)
                    .collect(),
                )),
                changes: cluster.changes,
            },
            incidents: store.clone(),
            store: store.clone(),
            clock: clock.clone(),
            registry: Registry::standard(),
            policy: DiagnosisPolicy {
                onset_slack_ns: config.detection.confirmation_ns(),
                ..config.diagnosis.policy()
            },
        })
        .with_observer(Arc::downgrade(&observers) as std::sync::Weak<dyn Observer>)
        .with_retriever(Arc::new(Retriever::new(corpus.clone())));
        if let Some(llm) = &config.diagnosis.llm {
            diagnosis = diagnosis.with_second_opinion(Arc::new(second_opinion(llm)?));
        }
        let diagnosis = Arc::new(diagnosis);
        observers.add(diagnosis.clone());
        let r = &config.remediation;
        let runtime: Arc<dyn Runtime> = match r.runtime {
            RuntimeKind::None => Arc::new(NoRuntime),
            RuntimeKind::Local => Arc::new(LocalRuntime::host(r.local.supervisor.clone())),
            // Validation requires kubernetes.enabled with this runtime.
            RuntimeKind::Kubernetes => cluster.runtime.clone().ok_or(AppError::NoClusterRuntime)?,
            RuntimeKind::GitOps => match (&r.gitops, cluster.runtime.clone()) {
                (Some(g), Some(kube)) => Arc::new(GitOpsRuntime::new(g.clone(), kube)),
                _ => return Err(AppError::NoClusterRuntime),
            },
        };
        let mut remediation = RemediationService::new(RemediationParts {
            playbooks: playbooks::load(r.playbooks.as_deref())?,
            policy: r.policy(),
            approval_ttl_ns: r.approval_ttl_ns(),
            verify_after_ns: r.verify_after_ns(),
            store: store.clone(),
            fleet: {
                let graph_fleet = GraphFleet {
                    graph: graph.clone(),
                    clock: clock.clone(),
                };
                match (cluster.pods.clone(), &r.local.supervisor) {
                    (Some(pods), _) => Arc::new(KubeFleet {
                        graph: graph_fleet,
                        pods,
                    }) as Arc<dyn FleetView>,
                    (None, Some(socket)) => Arc::new(SupervisorFleet {
                        graph: graph_fleet,
                        supervisor: Supervisor::new(socket.clone()),
                    }),
                    (None, None) => Arc::new(graph_fleet),
                }
            },
            runtime,
            incidents: store.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        })
        .with_observer(Arc::downgrade(&observers) as std::sync::Weak<dyn Observer>)
        .with_nodes(store.clone());
        if let Some(lock) = cluster.lock.clone() {
            remediation = remediation.with_lock(lock);
        }
        let remediation = Arc::new(remediation);
        observers.add(remediation.clone());
        let slack = config.slack.as_ref().map(slack).transpose()?;
        if let Some(s) = &slack {
            observers.add(s.notifier.clone());
        }
        let prometheus = Arc::new(
            PrometheusExporter::new(store.clone(), store.clone(), graph.clone(), clock.clone())
                .with_resources(pressure, certificates.clone()),
        );
        observers.add(prometheus.clone());
        let otlp = if config.otlp.enabled {
            let exporter = Arc::new(OtlpExporter::start(&config.otlp, store.clone())?);
            observers.add(exporter.clone());
            Some(exporter)
        } else {
            None
        };
        Ok(Self {
            store,
            clock,
            observers,
            incidents,
            ingest,
            graph,
            metrics,
            detection,
            alerts,
            diagnosis,
            corpus,
            audit,
            access,
            remediation,
            slack,
            prometheus,
            certificates,
            otlp,
        })
    }
}

/// The Slack notifier, its secrets read from the environment now (a missing one fails the
/// start, not the first approval).
fn slack(config: &SlackConfig) -> Result<Slack, AppError> {
    let env = |name: &String| {
        std::env::var(name).map_err(|_| AppError::MissingEnv {
            field: "slack",
            env: name.clone(),
        })
    };
    let webhook =
        SecretUrl::parse(env(&config.webhook_url_env)?).map_err(|_| AppError::SlackUrl {
            env: config.webhook_url_env.clone(),
        })?;
    let secret = match &config.signing_secret_env {
        Some(name) => Some(Arc::new(SigningSecret::new(env(name)?))),
        None => None,
    };
    let notifier = SlackNotifier::start(webhook, config.console_url.clone(), secret.is_some())
        .map_err(AppError::SlackThread)?;
    tracing::info!(
        approvals = secret.is_some(),
        approvers = config.approvers.len(),
        "Slack notifications enabled"
    );
    Ok(Slack {
        notifier: Arc::new(notifier),
        secret,
        approvers: Arc::new(config.approvers.iter().cloned().collect()),
        max_age_secs: i64::try_from(config.max_age_secs).unwrap_or(300),
    })
}

/// Who may call the API. The admin token comes from its file, which a fresh install writes:
/// the log names the file, never the token.
fn access(
    config: &ControlPlaneConfig,
    store: Arc<SqliteStore>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Access>, AppError> {
    let path = config.auth.admin_token_path(&config.store_path);
    let (secret, created) = token_file::load_or_create(&path)?;
    let access = Access::new(store, audit, clock);
    let installed = access.install_admin(&secret)?;
    if created {
        tracing::info!(file = %path.display(), "generated the admin API token: give it to the vigil CLI with --token-file or VIGIL_TOKEN, and issue smaller ones with `vigil tokens create`");
    } else if installed {
        tracing::info!(file = %path.display(), "installed the admin API token from its file");
    }
    Ok(Arc::new(access))
}

/// The configured LLM, its key read from the environment now (a missing key fails the start,
/// not the first incident).
fn second_opinion(config: &LlmConfig) -> Result<SecondOpinion, AppError> {
    let key = match &config.api_key_env {
        Some(env) => Some(ApiKey::new(
            std::env::var(env).map_err(|_| AppError::LlmKey { env: env.clone() })?,
        )),
        None => None,
    };
    let model =
        HttpChat::new(config.provider, config.url(), &config.model, key).map_err(|source| {
            AppError::LlmClient {
                url: config.url().to_string(),
                source,
            }
        })?;
    tracing::info!(model = %model.name(), url = config.url(), "LLM second opinion enabled");
    Ok(SecondOpinion::new(Arc::new(model), config.policy()))
}

/// The pgvector index the config names; its connection string and key from the environment
/// when so configured.
fn vector_index(config: &VectorConfig) -> Result<PgVector, AppError> {
    let env = |name: &String| {
        std::env::var(name).map_err(|_| AppError::MissingEnv {
            field: "diagnosis.vector",
            env: name.clone(),
        })
    };
    // Validation leaves exactly one of the two.
    let url = match (&config.postgres_url, &config.postgres_url_env) {
        (Some(url), _) => url.clone(),
        (None, name) => env(name.as_ref().unwrap_or(&String::new()))?,
    };
    let key = config
        .api_key_env
        .as_ref()
        .map(env)
        .transpose()?
        .map(ApiKey::new);
    let embeddings = Embeddings::new(
        &config.embeddings_url,
        &config.model,
        key,
        config.dimensions,
        config.timeout(),
    )?;
    let index = PgVector::connect(&url, embeddings, config.dimensions, config.min_similarity)?;
    tracing::info!(model = %config.model, dimensions = config.dimensions, "corpus retrieval by pgvector");
    Ok(index)
}
