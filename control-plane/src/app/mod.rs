//! Wiring: build the control plane's parts (`build`), bind its listeners, run the gRPC and
//! HTTP servers and the periodic jobs (`tasks`) and, with a cluster, the Kubernetes side
//! (`cluster`); on shutdown stop accepting, drain the jobs, save the baselines and flush the
//! exporters, all within `DRAIN_TIMEOUT`.

mod build;
mod cluster;
mod error;
mod tasks;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tracing::{error, info, warn};

use self::tasks::{before, Tasks};
pub use self::{
    build::{ClusterReads, ControlPlane},
    error::AppError,
};
use crate::{
    adapters::{
        access, actions_api, grpc, http,
        kube::{target_lock::KubeTargetLock, KubeEndpoints, KubeWorkloads},
        runtime::KubeRuntime,
        slack,
        tls::{Incoming, ServerFiles, ServerTls},
    },
    config::ControlPlaneConfig,
    domain::{
        clock::{Clock, SystemClock},
        diagnose::feedback::FeedbackService,
        interval::ports::IntervalStore,
    },
};
use vigil_config_file::error_chain as chain;

/// How long shutdown may take once the servers stopped accepting: the periodic jobs finish
/// their run, baselines are saved, exporters flush, the Lease is given up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often stored samples past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often proposals are decided, approvals expired and ran actions verified.
const REMEDIATE_EVERY: Duration = Duration::from_secs(1);
/// How often the audit log is checked for an unsigned tail older than its checkpoint time.
const AUDIT_TICK: Duration = Duration::from_secs(1);
/// How long the start waits for the Kubernetes watches' first listing.
const CLUSTER_LISTING: Duration = Duration::from_secs(10);
/// How often changed incidents are diagnosed (each diagnosis is well under a second).
const DIAGNOSE_EVERY: Duration = Duration::from_secs(1);

/// The bound addresses (useful when the config asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    field: &'static str,
) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            what,
            field,
            addr,
            source,
        })
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Starts the periodic jobs: quiet incidents resolve, old samples go, detection judges.
fn start_jobs(config: &ControlPlaneConfig, cp: &ControlPlane, tasks: &mut Tasks) {
    let quiet = Duration::from_secs(config.incidents.resolve_after_secs);
    let ingest = cp.ingest.clone();
    tasks.periodic(
        "incident resolver",
        quiet.min(Duration::from_secs(10)),
        move || ingest.resolve_quiet(nanos(quiet)).map(|_| ()),
    );
    let (store, clock) = (cp.store.clone(), cp.clock.clone());
    let retention = Duration::from_secs(config.graph.sample_retention_secs);
    tasks.periodic("sample pruner", PRUNE_EVERY, move || {
        store
            .prune_samples(clock.now_unix_ns().saturating_sub(nanos(retention)))
            .map(|_| ())
    });
    if let Some(d) = cp.detection.clone() {
        // Tick faster than the window so a window is judged soon after its grace ends.
        let period = Duration::from_nanos(
            u64::try_from(d.config().window_ns / 4)
                .unwrap_or(250_000_000)
                .max(50_000_000),
        );
        tasks.periodic("detection", period, move || d.tick().map(|_| ()));
    }
    let diagnosis = cp.diagnosis.clone();
    tasks.periodic("diagnosis", DIAGNOSE_EVERY, move || {
        diagnosis.tick().map(|_| ())
    });
    let remediation = cp.remediation.clone();
    tasks.periodic("remediation", REMEDIATE_EVERY, move || {
        remediation.tick().map(|_| ())
    });
    let audit = cp.audit.clone();
    tasks.periodic("audit checkpoint", AUDIT_TICK, move || {
        audit.checkpoint_if_due().map(|_| ())
    });
    if let Some(c) = cp.certificates.clone() {
        let every = Duration::from_secs(config.certificates.interval_secs.max(1));
        tasks.periodic("certificate check", every, move || {
            c.check();
            Ok::<(), std::convert::Infallible>(())
        });
    }
}

/// Binds both listeners, then serves until `shutdown` completes, then drains.
pub async fn run(
    config: ControlPlaneConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(Bound),
) -> Result<(), AppError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let kube_config = if config.kubernetes.enabled {
        Some(cluster::client_config(&config.kubernetes.api_server).await?)
    } else {
        None
    };
    let cluster = kube_config
        .clone()
        .map(kube::Client::try_from)
        .transpose()
        .map_err(|source| AppError::KubeClient { source })?;
    let mut watches = None;
    let reads = match &cluster {
        Some(client) => {
            info!(
                "resolving endpoints through the Kubernetes API (Pods, Services, EndpointSlices); pod logs and ReplicaSet revisions for diagnosis"
            );
            let endpoints = Arc::new(KubeEndpoints::start(client.clone()));
            let workloads = Arc::new(KubeWorkloads::start(client.clone(), endpoints.pods()));
            watches = Some((endpoints.clone(), workloads.clone()));
            ClusterReads {
                runtime: match &kube_config {
                    Some(c) => Some(Arc::new(
                        KubeRuntime::new(c.clone(), endpoints.pods())
                            .map_err(|source| AppError::KubeClient { source })?,
                    )),
                    None => None,
                },
                lock: Some(Arc::new(KubeTargetLock::new(
                    client.clone(),
                    &config.kubernetes.resolved_namespace(),
                    &config.kubernetes.resolved_identity(),
                ))),
                pods: Some(endpoints.pods()),
                resolver: endpoints,
                logs: Some(workloads.clone()),
                changes: workloads,
            }
        }
        None => ClusterReads::none(),
    };
    let cp = ControlPlane::build(&config, reads, clock)?;

    let grpc_listener = bind(config.grpc_listen, "gRPC ingest", "grpc_listen").await?;
    let http_listener = bind(config.http_listen, "the REST API", "http_listen").await?;
    let bound = Bound {
        grpc: grpc_listener.local_addr().map_err(AppError::Http)?,
        http: http_listener.local_addr().map_err(AppError::Http)?,
    };
    info!(grpc = %bound.grpc, http = %bound.http, store = %config.store_path.display(), "control plane listening");
    on_bound(bound);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Some((endpoints, workloads)) = &watches {
        // Resolution and diagnosis read the watches: the first incidents should not be judged
        // on an empty cluster. Bounded: a slow API server delays, never stops, the start.
        let listed = tokio::time::timeout(CLUSTER_LISTING, async {
            endpoints
                .wait_ready()
                .await
                .and(workloads.wait_ready().await)
        })
        .await;
        if !matches!(listed, Ok(Ok(()))) {
            warn!(
                timeout = ?CLUSTER_LISTING,
                "the Kubernetes watches have not listed yet; starting without them (they fill in as they list)"
            );
        }
    }
    let mut tasks = Tasks::new(stop_rx.clone());
    start_jobs(&config, &cp, &mut tasks);
    let cluster_tasks = match cluster {
        Some(client) => Some(cluster::start(client, &config.kubernetes, &cp).await?),
        None => None,
    };

    let (grpc_tls, api_tls) = listener_tls(&config, stop_rx.clone())?;
    let exporter = cp.prometheus.clone();
    let refused: Arc<dyn Fn(&'static str) + Send + Sync> =
        Arc::new(move |reason| exporter.ingest_refused(reason));
    let on_handshake = refused.clone();
    let grpc_incoming = Incoming::start(
        grpc_listener,
        grpc_tls.clone(),
        Arc::new(move || on_handshake("tls_handshake")),
    )
    .map_err(AppError::Http)?;
    let http_incoming =
        Incoming::start(http_listener, api_tls, Arc::new(|| ())).map_err(AppError::Http)?;
    let grpc = tonic::transport::Server::builder()
        .add_service(grpc::server(
            grpc::IngestApi {
                service: cp.ingest.clone(),
                metrics: cp.metrics.clone(),
                clock: cp.clock.clone(),
                max_batch_events: config.ingest.max_batch_events,
                require_identity: grpc_tls.is_some(),
                fleet_identities: config
                    .tls
                    .grpc
                    .as_ref()
                    .map(|t| t.fleet_identities.clone())
                    .unwrap_or_default(),
                refused,
                logged: Default::default(),
            },
            config.ingest.max_message_bytes,
        ))
        .serve_with_incoming_shutdown(grpc_incoming.into_stream(), stopped(stop_rx.clone()));
    let state = http::ApiState {
        events: cp.store.clone(),
        incidents: cp.store.clone(),
        nodes: cp.store.clone(),
        intervals: cp.store.clone(),
        graph: cp.graph.clone(),
        detection: cp.detection.clone(),
        prometheus: cp.prometheus.clone(),
        alerts: cp.alerts.clone(),
        diagnoses: cp.store.clone(),
        certificates: cp.certificates.clone(),
        clock: cp.clock.clone(),
        diagnosis: cp.diagnosis.clone(),
        feedback: Arc::new(FeedbackService {
            incidents: cp.store.clone(),
            diagnoses: cp.store.clone(),
            store: cp.store.clone(),
            clock: cp.clock.clone(),
            audit: cp.audit.clone(),
        }),
        audit: cp.audit.clone(),
    };
    // REST and MCP on one listener: the same state, the same read-only tools.
    let api = http::router(state.clone())
        .merge(actions_api::router(actions_api::ActionsState {
            remediation: cp.remediation.clone(),
            actions: cp.store.clone(),
        }))
        .merge(access::api::router(cp.access.clone()))
        .merge(slack_router(&cp))
        .merge(console_router(&config, &cp, &state, stop_rx.clone()))
        .nest_service("/mcp", crate::adapters::mcp::local::service(state))
        // Every route, MCP's too, behind one guard: see `access::need` for who may call what
        // (and each token's request rate).
        .layer(axum::middleware::from_fn_with_state(
            access::GuardState {
                access: cp.access.clone(),
                rate: Arc::new(crate::adapters::limits::RateLimiter::new(&config.api)),
            },
            access::guard,
        ))
        // Outermost: sizes and time, before anything reads the request.
        .layer(axum::extract::DefaultBodyLimit::max(
            config.api.max_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(config.api.clone()),
            crate::adapters::limits::limits,
        ));
    let http = axum::serve(http_incoming, api).with_graceful_shutdown(stopped(stop_rx));
    let result = tokio::try_join!(async { grpc.await.map_err(AppError::Grpc) }, async {
        http.await.map_err(AppError::Http)
    });
    drain(cp, tasks, cluster_tasks).await;
    result.map(|_| ())
}

/// Each listener's TLS, gRPC's then the API's (`None`: plaintext).
type ListenerTls = (Option<Arc<ServerTls>>, Option<Arc<ServerTls>>);

/// The listeners' TLS (`[tls]`), loaded now so a bad file stops the start, then reloaded
/// when the files change.
fn listener_tls(
    config: &ControlPlaneConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<ListenerTls, AppError> {
    let every = Duration::from_secs(config.tls.reload_interval_secs);
    let load = |files: ServerFiles| -> Result<Arc<ServerTls>, AppError> {
        let tls = ServerTls::load(files).map_err(AppError::Tls)?;
        tls.clone().watch(every, stop.clone());
        Ok(tls)
    };
    let grpc = config
        .tls
        .grpc
        .as_ref()
        .map(|t| {
            load(ServerFiles {
                section: "tls.grpc",
                cert: t.cert_file.clone(),
                key: t.key_file.clone(),
                client_ca: Some(t.client_ca_file.clone()),
                alpn: vec![b"h2".to_vec()],
            })
        })
        .transpose()?;
    let api = config
        .tls
        .api
        .as_ref()
        .map(|t| {
            load(ServerFiles {
                section: "tls.api",
                cert: t.cert_file.clone(),
                key: t.key_file.clone(),
                client_ca: None,
                alpn: vec![b"http/1.1".to_vec()],
            })
        })
        .transpose()?;
    if grpc.is_some() {
        info!("agents connect with mutual TLS: each may send only its own node's data");
    }
    Ok((grpc, api))
}

/// The operator console on the API's port, unless `[console] enabled = false`.
fn console_router(
    config: &ControlPlaneConfig,
    cp: &ControlPlane,
    api: &http::ApiState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> axum::Router {
    if !config.console.enabled {
        return axum::Router::new();
    }
    crate::adapters::console::router(crate::adapters::console::ConsoleState {
        api: api.clone(),
        actions: cp.store.clone(),
        access: cp.access.clone(),
        corpus: cp.corpus.clone(),
        lab_report: config.console.lab_report.clone(),
        stop,
        renders: Default::default(),
        secure_cookies: config.tls.api.is_some(),
    })
}

/// Slack's approve and deny callback, when a signing secret is configured to check it.
fn slack_router(cp: &ControlPlane) -> axum::Router {
    let Some((slack, secret)) = cp.slack.as_ref().and_then(|s| Some((s, s.secret.clone()?))) else {
        return axum::Router::new();
    };
    slack::interactions::router(slack::SlackInteractions {
        secret,
        approvers: slack.approvers.clone(),
        max_age_secs: slack.max_age_secs,
        remediation: cp.remediation.clone(),
        notifier: slack.notifier.clone(),
        clock: cp.clock.clone(),
    })
}

/// After the servers stopped: jobs finish, the cluster side stops, baselines are saved and
/// exporters flush, within `DRAIN_TIMEOUT` in all.
async fn drain(cp: ControlPlane, tasks: Tasks, cluster: Option<cluster::ClusterTasks>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    tasks.drain(deadline).await;
    if let Some(c) = cluster {
        before(deadline, "stopping the Kubernetes tasks", c.stop()).await;
    }
    if let Some(d) = cp.detection {
        let saved = before(
            deadline,
            "saving detection baselines",
            tokio::task::spawn_blocking(move || d.persist()),
        )
        .await;
        match saved {
            Some(Ok(Ok(n))) => info!(baselines = n, "detection baselines saved"),
            Some(Ok(Err(e))) => error!(error = %chain(&e), "saving detection baselines failed"),
            Some(Err(e)) => error!(error = %e, "saving detection baselines panicked"),
            None => {}
        }
    }
    // Nothing written is left unsigned: the tail gets its checkpoint before the process ends.
    let audit = cp.audit.clone();
    match before(
        deadline,
        "signing the audit log's tail",
        tokio::task::spawn_blocking(move || audit.checkpoint_now()),
    )
    .await
    {
        Some(Ok(Err(e))) => error!(error = %chain(&e), "signing the audit log's tail failed"),
        Some(Err(e)) => error!(error = %e, "signing the audit log's tail panicked"),
        _ => {}
    }
    if let Some(otlp) = cp.otlp {
        // The SDK's exporters block on their own threads; keep the async workers free.
        before(
            deadline,
            "flushing OTLP",
            tokio::task::spawn_blocking(move || otlp.flush()),
        )
        .await;
    }
}
