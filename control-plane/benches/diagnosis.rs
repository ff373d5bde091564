//! Diagnosis and retrieval speed, through the real store and the real corpus index.
//!
//! `cargo bench -p control-plane --bench diagnosis` (or `cargo xtask bench`) prints:
//! - the evidence diagnosis time per incident (every tool on the incident's window, the vote,
//!   the citations), p50 and p99, over a synthetic fleet's stored intervals (target ≤ 1 s
//!   without an LLM);
//! - the corpus index build over 10,000 documents, and the search latency over it, p50/p99.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use control_plane::{
    adapters::{
        corpus::{render, seed, FsCorpus},
        sqlite::SqliteStore,
    },
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        diagnose::{
            ports::{NoChanges, NoLogs, Sources},
            tools::Registry,
            DiagnosisParts, DiagnosisPolicy, DiagnosisService, FaultClass,
        },
        entity::EntityId,
        graph::{ports::NoCluster, GraphConfig, LiveGraph},
        incident::{
            details::AnomalyDetails, evidence::RootCause, ports::IncidentStore, Details, Finding,
            Severity,
        },
        interval::service::MetricsService,
        retrieve::{ports::Corpus, DocKind, Document, RetrievalQuery, Retriever},
    },
    eval::synthetic::{Fleet, SlowRedis, SEC},
};

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() -> anyhow::Result<()> {
    let chains: usize = std::env::var("VIGIL_BENCH_CHAINS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    let graph = Arc::new(LiveGraph::new(GraphConfig::default(), Arc::new(NoCluster)));
    let metrics = MetricsService::new(store.clone()).with_sink(graph.clone());
    let fleet = Fleet::new(chains);
    // Two minutes healthy, then half a minute of a slow Redis in chain 0. Every chain's app
    // gets an incident: chain 0's has a fault to find, the others only healthy evidence, and
    // each reads the same amount of stored data.
    let (healthy, faulty) = (120u64, 30u64);
    let start = SystemClock.now_unix_ns() / SEC * SEC - (healthy + faulty) as i64 * SEC;
    for seq in 1..=healthy + faulty {
        let fault = (seq > healthy).then_some(SlowRedis {
            chain: 0,
            rtt_us: 150_000,
        });
        metrics.ingest(&fleet.interval(seq, start + seq as i64 * SEC, fault))?;
    }
    let end = start + (healthy + faulty) as i64 * SEC;
    let clock = Arc::new(ManualClock::at(end));
    let corpus_dir = dir.path().join("corpus");
    let corpus: Arc<dyn Corpus> = Arc::new(FsCorpus::open(&corpus_dir)?);
    seed::seed(&corpus_dir)?;
    let diagnosis = DiagnosisService::new(DiagnosisParts {
        sources: Sources {
            events: store.clone(),
            samples: store.clone(),
            graph: graph.clone(),
            logs: Arc::new(NoLogs),
            changes: Arc::new(NoChanges),
        },
        incidents: store.clone(),
        store: store.clone(),
        clock: clock.clone(),
        registry: Registry::standard(),
        policy: DiagnosisPolicy::default(),
    })
    .with_retriever(Arc::new(Retriever::new(corpus.clone())));
    let onset = start + (healthy as i64 + 1) * SEC;
    let mut times = Vec::new();
    for chain in 0..chains {
        let [_, app, _, _] = Fleet::names(chain);
        let incident = store.create(&Finding {
            severity: Severity::Critical,
            node: "synthetic".into(),
            workload_key: EntityId::new(&app),
            title: format!("{app} slow"),
            summary: String::new(),
            time_unix_ns: onset + 3 * SEC,
            evidence: Vec::new(),
            details: Details::ServiceAnomaly(AnomalyDetails {
                root_causes: vec![RootCause {
                    entity: EntityId::new(&app),
                    score: 1.0,
                    anomaly: 5.0,
                }],
                entities: BTreeMap::new(),
                first_anomaly_unix_ns: Some(onset),
                episode_started_unix_ns: onset,
                symptoms: Vec::new(),
                timeline: Vec::new(),
            }),
            stages: Vec::new(),
        })?;
        let t = Instant::now();
        let d = diagnosis.diagnose_and_store(&incident)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if chain == 0 {
            println!(
                "diagnosis benchmark: {chains} chains ({} workloads), {} s of stored intervals; first verdict: {} at {:.2}, {} citations",
                chains * 4,
                healthy + faulty,
                d.class.map_or("none", FaultClass::id),
                d.confidence,
                d.citations.len()
            );
        }
    }
    let (p50, p99) = quantiles(times);
    println!("  evidence diagnosis per incident: p50 {p50:.1} ms, p99 {p99:.1} ms (target ≤ 1000 ms, no LLM)");

    // Retrieval over 10,000 documents: the starter runbooks and synthetic postmortems.
    let big = dir.path().join("big-corpus");
    seed::seed(&big)?;
    let n = 10_000;
    std::fs::create_dir_all(big.join("postmortems"))?;
    for i in 0..n {
        let class = FaultClass::ALL[i % FaultClass::ALL.len()];
        let service = format!("cgroup/svc{}", i % 300);
        let doc = Document {
            id: format!("pm-{i}"),
            kind: DocKind::Postmortem,
            title: format!("Postmortem {i}: {} on {service}", class.id()),
            classes: vec![class],
            services: vec![service.clone()],
            severity: Some("critical".into()),
            date: Some("2026-11-01".into()),
            body: format!(
                "# Incident {i}\n\n{service}: {}. Recommended: {}. Evidence: window {} of {}, \
                 rose {} times over its baseline; resolved after {} s.\n",
                class.about(),
                class.recommended_actions().join("; "),
                i % 97,
                i % 13,
                i % 7 + 2,
                i % 600
            ),
        };
        std::fs::write(
            big.join("postmortems").join(format!("pm-{i}.md")),
            render(&doc)?,
        )?;
    }
    let corpus = FsCorpus::open(&big)?;
    let t = Instant::now();
    corpus.search(&RetrievalQuery {
        text: "warm".into(),
        limit: 1,
        ..RetrievalQuery::default()
    })?;
    let build = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for i in 0..500 {
        let class = FaultClass::ALL[i % FaultClass::ALL.len()];
        let q = RetrievalQuery {
            text: format!(
                "cgroup/svc{} {} {}",
                i % 300,
                class.id().replace('_', " "),
                class.about()
            ),
            kind: Some(DocKind::Postmortem),
            class: Some(class),
            service: None,
            limit: 5,
        };
        let t = Instant::now();
        let hits = corpus.search(&q)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(!hits.is_empty(), "no hit for {:?}", q.text);
    }
    let (p50, p99) = quantiles(times);
    println!(
        "retrieval benchmark: {} documents indexed in {:.2} s (on the first search after a change)",
        n + seed::STARTER.len(),
        build
    );
    println!("  search (top 5, class filter): p50 {p50:.2} ms, p99 {p99:.2} ms");
    Ok(())
}
