//! Retrieval over the corpus (markdown files), indexed by tantivy in memory (the default) and
//! by embeddings in a real PostgreSQL with pgvector (the same tests, each run on both): the
//! learn step's postmortem draft is what a recurrence of the same fault finds first, and a
//! runbook edited on disk is found by the next search, with no restart.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::Duration,
};

use control_plane::{
    adapters::{
        corpus::{seed, FsCorpus},
        pgvector::{embeddings::Embeddings, PgVector},
        sqlite::SqliteStore,
    },
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        detection::ports::GraphView,
        diagnose::{
            ports::{DiagnosisStore, NoChanges, NoLogs, Sources},
            tools::Registry,
            DiagnosisParts, DiagnosisPolicy, DiagnosisService, FaultClass,
        },
        entity::{EdgeId, EntityId},
        incident::{observed::ObservedIncidents, Incident},
        ingest::{Batch, IngestService},
        interval::Endpoint,
        observe::{Observer, Observers},
        retrieve::{ports::Corpus, service::Learner, DocKind, Document, RetrievalQuery, Retriever},
        synthetic::oom_kill,
    },
};

use crate::support::pgvector::{PgServer, ScriptedEmbeddings, DIMENSIONS};

const SECOND: i64 = 1_000_000_000;

struct NoGraph;

impl GraphView for NoGraph {
    fn server_entity(&self, _node: &str, e: &Endpoint) -> EntityId {
        EntityId::new(format!("ip/{}", e.ip))
    }
    fn call_edges(&self, _now: i64) -> Vec<EdgeId> {
        Vec::new()
    }
}

struct World {
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    ingest: IngestService,
    diagnosis: Arc<DiagnosisService>,
    corpus: Arc<dyn Corpus>,
    dir: std::path::PathBuf,
    _observers: Arc<Observers>,
    _dir: tempfile::TempDir,
    seq: u64,
}

/// Which index the corpus has.
enum Index<'a> {
    Tantivy,
    PgVector(&'a PgServer, &'a ScriptedEmbeddings),
}

impl World {
    fn new(index: Index<'_>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus_dir = dir.path().join("corpus");
        let corpus: Arc<dyn Corpus> = match index {
            Index::Tantivy => Arc::new(FsCorpus::open(&corpus_dir).expect("corpus")),
            Index::PgVector(pg, model) => {
                let embeddings = Embeddings::new(
                    &model.url,
                    "scripted-bag-of-words",
                    None,
                    DIMENSIONS,
                    Duration::from_secs(10),
                )
                .expect("embeddings client");
                let index =
                    PgVector::connect(&pg.url, embeddings, DIMENSIONS, 0.25).expect("pgvector");
                Arc::new(FsCorpus::with_index(&corpus_dir, index).expect("corpus"))
            }
        };
        assert!(
            seed::seed(&corpus_dir).expect("seed") >= 26,
            "the starter runbooks"
        );
        let store = Arc::new(SqliteStore::in_memory().expect("store"));
        let clock = Arc::new(ManualClock::at(SystemClock.now_unix_ns()));
        let observers = Arc::new(Observers::default());
        observers.add(Arc::new(Learner::new(corpus.clone())));
        // As the control plane wires it: incident changes reach the diagnosis through the
        // observers, and diagnoses reach the learn step through them.
        let incidents = Arc::new(ObservedIncidents::new(store.clone(), observers.clone()));
        let ingest = crate::support::ingest::ingest(&store, incidents, clock.clone());
        let diagnosis = Arc::new(
            DiagnosisService::new(DiagnosisParts {
                sources: Sources {
                    events: store.clone(),
                    samples: store.clone(),
                    graph: Arc::new(NoGraph),
                    logs: Arc::new(NoLogs),
                    changes: Arc::new(NoChanges),
                },
                incidents: store.clone(),
                store: store.clone(),
                clock: clock.clone(),
                registry: Registry::standard(),
                policy: DiagnosisPolicy {
                    tick_budget_ns: i64::MAX,
                    ..DiagnosisPolicy::default()
                },
            })
            .with_observer(Arc::downgrade(&observers) as Weak<dyn Observer>)
            .with_retriever(Arc::new(Retriever::new(corpus.clone()))),
        );
        observers.add(diagnosis.clone());
        Self {
            store,
            clock,
            ingest,
            diagnosis,
            corpus,
            dir: corpus_dir,
            _observers: observers,
            _dir: dir,
            seq: 0,
        }
    }

    fn oom(&mut self, key: &str) -> Incident {
        self.seq += 1;
        let now = self.clock.now_unix_ns();
        let report = self
            .ingest
            .ingest(&Batch {
                node: "n1".into(),
                events: vec![oom_kill(self.seq, now, key)],
                stats: None,
            })
            .expect("ingest");
        let id = *report.incidents_opened.first().expect("an incident opens");
        control_plane::domain::incident::ports::IncidentStore::get(self.store.as_ref(), id)
            .expect("get")
            .expect("kept")
    }
}

fn past_incident(id: &str, class: FaultClass, service: &str) -> Document {
    Document {
        id: id.into(),
        kind: DocKind::Postmortem,
        title: format!("Postmortem: {} on {service}", class.id()),
        classes: vec![class],
        services: vec![service.into()],
        severity: Some("critical".into()),
        date: Some("2026-11-01".into()),
        body: format!("{service} had {}: {}.\n", class.id(), class.about()),
    }
}

/// Each scenario on the default index and on pgvector.
macro_rules! on_both_indexes {
    ($scenario:ident: $tantivy:ident, $pgvector:ident) => {
        #[test]
        fn $tantivy() {
            $scenario(World::new(Index::Tantivy));
        }

        #[test]
        fn $pgvector() {
            let Some(pg) = PgServer::start() else { return };
            let model = ScriptedEmbeddings::start();
            $scenario(World::new(Index::PgVector(&pg, &model)));
            assert!(
                model.embedded.load(std::sync::atomic::Ordering::SeqCst) > 0,
                "the corpus and the queries went through the embeddings endpoint"
            );
        }
    };
}

on_both_indexes!(postmortem_for_recurrence: a_resolved_incidents_postmortem_is_the_top_similar_incident_for_its_recurrence, with_pgvector_a_resolved_incidents_postmortem_is_the_top_similar_incident_for_its_recurrence);
on_both_indexes!(runbook_edited_on_disk: a_runbook_edited_on_disk_is_found_without_a_restart_and_a_broken_one_is_left_out, with_pgvector_a_runbook_edited_on_disk_is_found_without_a_restart_and_a_broken_one_is_left_out);

fn postmortem_for_recurrence(mut w: World) {
    // Other past incidents: the same fault elsewhere, another fault here.
    w.corpus
        .put(&past_incident(
            "pm-other-service",
            FaultClass::OomKill,
            "cgroup/billing",
        ))
        .expect("put");
    w.corpus
        .put(&past_incident(
            "pm-other-fault",
            FaultClass::CredentialFailure,
            "cgroup/checkout",
        ))
        .expect("put");

    let first = w.oom("cgroup/checkout");
    w.diagnosis.diagnose_and_store(&first).expect("diagnose");
    // Quiet for a while: it resolves, and its final diagnosis writes the draft.
    w.clock.set(w.clock.now_unix_ns() + 600 * SECOND);
    let resolved = w.ingest.resolve_quiet(60 * SECOND).expect("resolve");
    assert_eq!(resolved, vec![first.id]);
    w.diagnosis.tick().expect("tick");
    let draft_id = format!("postmortem-incident-{}", first.id);
    assert!(
        w.corpus.contains(&draft_id).expect("contains"),
        "the draft is in the corpus"
    );
    let draft = std::fs::read_to_string(w.dir.join("postmortems").join(format!("{draft_id}.md")))
        .expect("the draft is a file an engineer can edit");
    for section in [
        "## Timeline",
        "## Evidence",
        "## Diagnosis",
        "## Actions",
        "## Outcome",
    ] {
        assert!(draft.contains(section), "{section} missing:\n{draft}");
    }

    // The same fault again, on the same service.
    w.clock.set(w.clock.now_unix_ns() + 3600 * SECOND);
    let again = w.oom("cgroup/checkout");
    let d = w.diagnosis.diagnose_and_store(&again).expect("diagnose");
    assert_eq!(d.class, Some(FaultClass::OomKill));
    let runbook = d.citations.first().expect("citations");
    assert_eq!(
        (runbook.kind.as_str(), runbook.id.as_str()),
        ("runbook", "runbook-oom-kill")
    );
    let similar: Vec<&str> = d
        .citations
        .iter()
        .filter(|c| c.kind == "postmortem")
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(similar.first(), Some(&draft_id.as_str()), "{similar:?}");
    assert!(
        similar.contains(&"pm-other-service"),
        "the same fault elsewhere ranks after: {similar:?}"
    );
    assert!(
        !similar.contains(&"pm-other-fault"),
        "another fault class is not similar: {similar:?}"
    );
    let cited: HashMap<_, _> = d.citations.iter().map(|c| (c.id.as_str(), c)).collect();
    for id in cited.keys() {
        assert!(
            w.corpus.contains(id).expect("contains"),
            "{id} cited but not in the corpus"
        );
    }
    let kept = w.store.diagnosis(again.id).expect("read").expect("kept");
    assert_eq!(
        kept.citations, d.citations,
        "citations are stored with the diagnosis"
    );
}

fn runbook_edited_on_disk(w: World) {
    let search = |text: &str| {
        w.corpus
            .search(&RetrievalQuery {
                text: text.into(),
                kind: Some(DocKind::Runbook),
                limit: 3,
                ..RetrievalQuery::default()
            })
            .expect("search")
    };
    assert!(search("zanzibar").is_empty(), "nothing says it yet");
    let path = w.dir.join("runbooks").join("disk_full.md");
    let mut text = std::fs::read_to_string(&path).expect("the starter runbook");
    text.push_str(
        "\n## Local procedure\n\nPage the zanzibar storage team before deleting anything.\n",
    );
    std::fs::write(&path, text).expect("edit");
    // A neighbour with broken front matter must not take the corpus down with it.
    std::fs::write(
        w.dir.join("runbooks").join("broken.md"),
        "no front matter\n",
    )
    .expect("write");
    // A search looks for changes at most once a second.
    std::thread::sleep(Duration::from_millis(1_100));
    let hits = search("zanzibar");
    assert_eq!(
        hits.first().map(|h| h.id.as_str()),
        Some("runbook-disk-full"),
        "{hits:?}"
    );
    assert!(
        hits[0].snippet.contains("zanzibar"),
        "the matching passage: {:?}",
        hits[0].snippet
    );
    assert!(
        !search("oom killer memory limit").is_empty(),
        "the rest is still indexed"
    );
}
