//! Wiring: store → ingest service → gRPC and HTTP servers, plus the incident resolver.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{error, info};

use crate::{
    adapters::{
        grpc, http,
        kube::{
            leader::{self, Leadership, LeaseSettings},
            mirror::KubeMirror,
            reconcile,
            report::IncidentReport,
            KubeEndpoints,
        },
        otlp::OtlpExporter,
        prometheus::PrometheusExporter,
        sqlite::SqliteStore,
    },
    config::ControlPlaneConfig,
    domain::{
        alerts::AlertService,
        detection::DetectionService,
        ingest::{now_unix_ns, IngestService},
        metrics::MetricsService,
        observed::{ObservedIncidents, Observers},
        rules::Tier1Rules,
    },
    ports::{EndpointResolver, IncidentStore, NoCluster, Observer, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("kubernetes.enabled is set but no API client could be made: {0} (set kubernetes.api_server, KUBECONFIG, or run in a pod with a service account)")]
    Kube(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("leader election failed: {0} (RBAC: get/create/patch leases in the namespace; or set kubernetes.leader_election = false for a single replica)")]
    Election(String),
    #[error(transparent)]
    Otlp(#[from] crate::adapters::otlp::OtlpError),
    #[error("cannot listen on {addr} for {what}. Is another process using the port? Set `{field}` in the config")]
    Bind {
        what: &'static str,
        field: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed")]
    Http(#[source] std::io::Error),
}

/// The bound addresses (useful when the config asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

async fn kube_client(api_server: &str) -> Result<kube::Client, AppError> {
    let config = if api_server.is_empty() {
        kube::Config::infer()
            .await
            .map_err(|e| AppError::Kube(e.to_string()))?
    } else {
        let uri = api_server
            .parse()
            .map_err(|e: ::http::uri::InvalidUri| AppError::Kube(e.to_string()))?;
        kube::Config::new(uri)
    };
    kube::Client::try_from(config).map_err(|e| AppError::Kube(e.to_string()))
}

/// Binds both listeners, then serves until `shutdown` completes.
pub async fn run(
    config: ControlPlaneConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(Bound),
) -> Result<(), AppError> {
    let store = Arc::new(SqliteStore::open(&config.store_path)?);
    // Exporters see every incident change through the store the use cases write to; they
    // join below, once what they read exists.
    let observers = Arc::new(Observers::default());
    let observer: Arc<dyn Observer> = observers.clone();
    let incidents: Arc<dyn IncidentStore> =
        Arc::new(ObservedIncidents::new(store.clone(), observer.clone()));
    let service = Arc::new(
        IngestService::new(
            store.clone(),
            incidents.clone(),
            store.clone(),
            Tier1Rules::new(config.crash_loop_policy()),
        )
        .with_observer(observer.clone()),
    );
    let cluster = if config.kubernetes.enabled {
        Some(kube_client(&config.kubernetes.api_server).await?)
    } else {
        None
    };
    let resolver: Arc<dyn EndpointResolver> = match &cluster {
        Some(client) => {
            info!(
                "resolving endpoints through the Kubernetes API (Pods, Services, EndpointSlices)"
            );
            Arc::new(KubeEndpoints::start(client.clone()))
        }
        None => Arc::new(NoCluster),
    };
    let detection = if config.detection.enabled {
        Some(Arc::new(
            DetectionService::new(config.detection_config(), incidents.clone(), store.clone())?
                .with_observer(observer.clone()),
        ))
    } else {
        None
    };
    let mut metrics = MetricsService::new(store.clone(), resolver, config.graph_config())
        .with_observer(observer.clone());
    if let Some(d) = &detection {
        metrics = metrics.with_detection(d.clone());
    }
    let metrics = Arc::new(metrics);
    metrics.rebuild(now_unix_ns())?;
    let prometheus = Arc::new(PrometheusExporter::new(
        store.clone(),
        store.clone(),
        metrics.clone(),
    ));
    observers.add(prometheus.clone());
    let otlp = if config.otlp.enabled {
        let exporter = Arc::new(OtlpExporter::start(&config.otlp, store.clone())?);
        observers.add(exporter.clone());
        Some(exporter)
    } else {
        None
    };

    let bind = |addr, what, field| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind {
                what,
                field,
                addr,
                source,
            })
    };
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

    let resolver = {
        let service = service.clone();
        let quiet = Duration::from_secs(config.incidents.resolve_after_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(quiet.min(Duration::from_secs(10)));
            loop {
                tick.tick().await;
                let service = service.clone();
                let quiet_ns = i64::try_from(quiet.as_nanos()).unwrap_or(i64::MAX);
                match tokio::task::spawn_blocking(move || {
                    service.resolve_quiet(now_unix_ns(), quiet_ns)
                })
                .await
                {
                    Ok(Err(e)) => error!(error = %e, "resolving quiet incidents failed"),
                    Err(e) => error!(error = %e, "incident resolver panicked"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    };

    let pruner = {
        let store = store.clone();
        let retention = config.graph.sample_retention_secs;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let store = store.clone();
                let before = now_unix_ns()
                    - i64::try_from(retention).unwrap_or(i64::MAX / 2) * 1_000_000_000;
                match tokio::task::spawn_blocking(move || store.prune_samples(before)).await {
                    Ok(Err(e)) => error!(error = %e, "pruning old samples failed"),
                    Err(e) => error!(error = %e, "sample pruner panicked"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    };

    let detector = detection.clone().map(|d| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // Tick faster than the window so a window is judged soon after its grace ends.
            let period = Duration::from_nanos(
                u64::try_from(d.config().window_ns / 4)
                    .unwrap_or(250_000_000)
                    .max(50_000_000),
            );
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (d, m) = (d.clone(), metrics.clone());
                match tokio::task::spawn_blocking(move || d.tick(now_unix_ns(), m.as_ref())).await {
                    Ok(Err(e)) => error!(error = %e, "detection failed for this window"),
                    Err(e) => error!(error = %e, "detection panicked"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    });

    let grpc = tonic::transport::Server::builder()
        .add_service(grpc::server(
            service,
            metrics.clone(),
            config.ingest.max_batch_events,
            config.ingest.max_message_bytes,
        ))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
        );
    let alerts = Arc::new(AlertService::new(
        incidents.clone(),
        store.clone(),
        metrics.clone(),
    ));
    let mut cluster_tasks = Vec::new();
    let mut election = None;
    if let Some(client) = &cluster {
        let k = &config.kubernetes;
        let namespace = k.resolved_namespace();
        let leadership = if k.leader_election {
            let settings = LeaseSettings {
                namespace: namespace.clone(),
                name: k.lease_name.clone(),
                identity: k.resolved_identity(),
                duration_secs: k.lease_duration_secs,
                grace_secs: k.lease_grace_secs,
            };
            let (leadership, campaign) = leader::campaign(client.clone(), &settings)
                .await
                .map_err(|e| {
                    AppError::Election(format!("Lease {namespace}/{}: {e}", k.lease_name))
                })?;
            election = Some(campaign);
            leadership
        } else {
            Leadership::sole()
        };
        if k.incident_reports {
            let reports: kube::Api<IncidentReport> =
                kube::Api::namespaced(client.clone(), &namespace);
            observers.add(Arc::new(KubeMirror::start(
                reports.clone(),
                leadership.clone(),
            )));
            cluster_tasks.push(tokio::spawn(reconcile::run(reconcile::Context::new(
                reports,
                alerts.clone(),
                incidents.clone(),
                leadership,
            ))));
            info!(%namespace, "mirroring incidents into IncidentReports");
        }
    }
    let api = http::router(http::ApiState {
        events: store.clone(),
        incidents: store.clone(),
        nodes: store.clone(),
        telemetry: store,
        metrics,
        detection: detection.clone(),
        prometheus,
        alerts,
    });
    let http = axum::serve(http_listener, api).with_graceful_shutdown(stopped(stop_rx));
    let result = tokio::try_join!(async { grpc.await.map_err(AppError::Grpc) }, async {
        http.await.map_err(AppError::Http)
    });
    resolver.abort();
    pruner.abort();
    for t in cluster_tasks {
        t.abort();
    }
    if let Some(e) = election {
        e.resign().await;
    }
    if let Some(t) = detector {
        t.abort();
    }
    if let Some(d) = detection {
        match tokio::task::spawn_blocking(move || d.persist()).await {
            Ok(Ok(n)) => info!(baselines = n, "detection baselines saved"),
            Ok(Err(e)) => error!(error = %e, "saving detection baselines failed"),
            Err(e) => error!(error = %e, "saving detection baselines panicked"),
        }
    }
    if let Some(otlp) = otlp {
        // The SDK's exporters block on their own threads; keep the async workers free.
        let _ = tokio::task::spawn_blocking(move || otlp.flush()).await;
    }
    result.map(|_| ())
}
