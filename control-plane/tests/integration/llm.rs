//! The LLM second opinion against scripted models that speak each provider's real wire format
//! (OpenAI chat completions, Anthropic messages) over a real socket: the tool loop runs the
//! real evidence tools on a real store, and every answer is judged against the evidence —
//! agreement keeps the diagnosis, contradiction lowers it to review, a hallucinated citation
//! is rejected, a malformed answer is retried once, and every bound stops the loop.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, http::HeaderMap, routing::post, Json, Router};
use serde_json::{json, Value};

use control_plane::{
    adapters::{
        corpus::{seed, FsCorpus},
        llm::{ApiKey, HttpChat, Provider},
        sqlite::SqliteStore,
    },
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        detection::ports::GraphView,
        diagnose::{
            llm::{Bound, Ending, Judgement, LlmPolicy, LlmReview, SecondOpinion},
            ports::{DiagnosisStore, NoChanges, NoLogs, Sources},
            tools::Registry,
            Diagnosis, DiagnosisParts, DiagnosisPolicy, DiagnosisService, FaultClass, Route,
        },
        entity::{EdgeId, EntityId},
        incident::{ports::IncidentStore, Incident},
        ingest::Batch,
        interval::Endpoint,
        retrieve::Retriever,
        synthetic::oom_kill,
    },
};

const SECOND: i64 = 1_000_000_000;
const APP: &str = "cgroup/app";
const KEY: &str = "sk-test-0123456789";

/// What the scripted model says on one turn.
enum Turn {
    Text(String),
    Calls(Vec<(&'static str, Value)>),
    /// Answers only after this long.
    Slow(Duration),
    /// Refuses with this HTTP status.
    Status(u16),
}

/// Turn `n` (from 0) of the conversation, given the brief the model was sent.
type Script = dyn Fn(usize, &str) -> Turn + Send + Sync;

#[derive(Clone)]
struct Model {
    provider: Provider,
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Model {
    fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.requests.lock().expect("requests").clone()
    }
}

/// The brief, where each format puts the first user message.
fn brief_of(provider: Provider, body: &Value) -> String {
    let text = match provider {
        Provider::Openai => body.pointer("/messages/1/content"),
        Provider::Anthropic => body.pointer("/messages/0/content/0/text"),
    };
    text.and_then(Value::as_str).unwrap_or("").to_string()
}

/// The tool results sent back in a request: (content, is_error).
fn tool_results(provider: Provider, body: &Value) -> Vec<(String, bool)> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    match provider {
        Provider::Openai => messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| {
                let c = m["content"].as_str().unwrap_or("").to_string();
                let err = c.starts_with("error:") || c.starts_with("refused:");
                (c, err)
            })
            .collect(),
        Provider::Anthropic => messages
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result")
            .map(|b| {
                (
                    b["content"].as_str().unwrap_or("").to_string(),
                    b["is_error"] == true,
                )
            })
            .collect(),
    }
}

/// The document ids the brief offers for citation.
fn documents(brief: &str) -> Vec<String> {
    brief
        .split("Documents (cite by id):\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| l.starts_with("- ") && *l != "- none")
        .filter_map(|l| l[2..].split(' ').next().map(str::to_string))
        .collect()
}

fn reply(provider: Provider, n: usize, turn: Turn) -> Value {
    let usage_openai = json!({"prompt_tokens": 900, "completion_tokens": 60});
    let usage_anthropic = json!({"input_tokens": 900, "output_tokens": 60});
    match (provider, turn) {
        (Provider::Openai, Turn::Text(t)) => json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}],
            "usage": usage_openai,
        }),
        (Provider::Openai, Turn::Calls(calls)) => json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": calls.iter().enumerate().map(|(i, (name, args))| json!({
                    "id": format!("call_{n}_{i}"), "type": "function",
                    "function": {"name": name, "arguments": args.to_string()},
                })).collect::<Vec<_>>()}, "finish_reason": "tool_calls"}],
            "usage": usage_openai,
        }),
        (Provider::Anthropic, Turn::Text(t)) => json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": t}], "stop_reason": "end_turn",
            "usage": usage_anthropic,
        }),
        (Provider::Anthropic, Turn::Calls(calls)) => json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant",
            "content": calls.iter().enumerate().map(|(i, (name, args))| json!({
                "type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": args,
            })).collect::<Vec<_>>(),
            "stop_reason": "tool_use", "usage": usage_anthropic,
        }),
        (_, Turn::Slow(_) | Turn::Status(_)) => unreachable!("handled by the server"),
    }
}

async fn chat(
    State(model): State<Model>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = {
        let mut r = model.requests.lock().expect("requests");
        r.push((headers, body.clone()));
        r.len() - 1
    };
    let brief = brief_of(model.provider, &body);
    match (model.script)(n, &brief) {
        Turn::Slow(d) => {
            tokio::time::sleep(d).await;
            Json(reply(model.provider, n, Turn::Text("{}".into()))).into_response()
        }
        Turn::Status(code) => (
            axum::http::StatusCode::from_u16(code).expect("status"),
            Json(json!({"error": {"message": "invalid api key", "type": "auth"}})),
        )
            .into_response(),
        turn => Json(reply(model.provider, n, turn)).into_response(),
    }
}

/// Serves `script` in `provider`'s format on 127.0.0.1; the URL to configure.
fn serve(provider: Provider, script: Arc<Script>) -> (Model, String) {
    let model = Model {
        provider,
        script,
        requests: Arc::default(),
    };
    let app = Router::new()
        .route("/chat/completions", post(chat))
        .route("/v1/messages", post(chat))
        .with_state(model.clone());
    let addr = crate::support::http::serve(app);
    (model, format!("http://{addr}"))
}

struct NoGraph;

impl GraphView for NoGraph {
    fn server_entity(&self, _node: &str, e: &Endpoint) -> EntityId {
        EntityId::external(e)
    }

    fn call_edges(&self, _now: i64) -> Vec<EdgeId> {
        Vec::new()
    }
}

/// An OOM-killed workload's incident on a real store, with the starter runbooks to cite.
struct Bench {
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    retriever: Arc<Retriever>,
    incident: Incident,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus_dir = dir.path().join("corpus");
        let corpus = Arc::new(FsCorpus::open(&corpus_dir).expect("corpus"));
        seed::seed(&corpus_dir).expect("seed");
        let store = Arc::new(SqliteStore::in_memory().expect("store"));
        let now = SystemClock.now_unix_ns();
        let clock = Arc::new(ManualClock::at(now));
        let ingest = crate::support::ingest::ingest(&store, store.clone(), clock.clone());
        let report = ingest
            .ingest(&Batch {
                node: "n1".into(),
                events: vec![oom_kill(1, now - 2 * SECOND, APP)],
                stats: None,
            })
            .expect("ingest");
        let incident = store
            .get(report.incidents_opened[0])
            .expect("get")
            .expect("opened");
        Self {
            store,
            clock,
            retriever: Arc::new(Retriever::new(corpus)),
            incident,
            _dir: dir,
        }
    }

    fn service(&self, llm: Option<Arc<SecondOpinion>>) -> DiagnosisService {
        let s = DiagnosisService::new(DiagnosisParts {
            sources: Sources {
                events: self.store.clone(),
                samples: self.store.clone(),
                graph: Arc::new(NoGraph),
                logs: Arc::new(NoLogs),
                changes: Arc::new(NoChanges),
            },
            incidents: self.store.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            registry: Registry::standard(),
            policy: DiagnosisPolicy::default(),
        })
        .with_retriever(self.retriever.clone());
        match llm {
            Some(llm) => s.with_second_opinion(llm),
            None => s,
        }
    }

    /// The evidence's diagnosis alone.
    fn evidence(&self) -> Diagnosis {
        self.service(None).diagnose(&self.incident)
    }

    /// The diagnosis with `script`'s second opinion, as stored; and what the model was sent.
    fn with(
        &self,
        provider: Provider,
        policy: LlmPolicy,
        script: Arc<Script>,
    ) -> (Diagnosis, LlmReview, Model) {
        let (model, url) = serve(provider, script);
        let chat = HttpChat::new(provider, &url, "scripted", Some(ApiKey::new(KEY.into())))
            .expect("client");
        let service = self.service(Some(Arc::new(SecondOpinion::new(Arc::new(chat), policy))));
        let d = service
            .diagnose_and_store(&self.incident)
            .expect("diagnose");
        let kept = self
            .store
            .diagnosis(self.incident.id)
            .expect("read")
            .expect("kept");
        // (Observation weights rank the brief and are not stored.)
        assert_eq!(
            (
                &kept.llm_review,
                kept.route,
                kept.confidence,
                &kept.explanation
            ),
            (&d.llm_review, d.route, d.confidence, &d.explanation),
            "the stored diagnosis is the one made, review and all"
        );
        let review = d.llm_review.clone().expect("a second opinion was asked");
        (d, review, model)
    }
}

fn answer(class: &str, citations: &[String]) -> String {
    json!({
        "class": class,
        "confidence": 0.9,
        "explanation": format!("the evidence points to {class}"),
        "citations": citations,
        "recommended_actions": ["raise the memory limit"],
    })
    .to_string()
}

fn policy() -> LlmPolicy {
    LlmPolicy {
        max_steps: 10,
        max_wall: Duration::from_secs(20),
        ..LlmPolicy::default()
    }
}

const PROVIDERS: [Provider; 2] = [Provider::Openai, Provider::Anthropic];

#[test]
fn the_evidence_alone_is_a_confident_oom_kill_with_runbooks_to_cite() {
    // The premise of every scenario below.
    let d = Bench::new().evidence();
    assert_eq!(d.class, Some(FaultClass::OomKill), "{d:#?}");
    assert_eq!(d.route, Route::Remediation, "{d:#?}");
    assert!(!d.citations.is_empty(), "{d:#?}");
    assert!(d.llm_review.is_none() && !d.llm);
}

#[test]
fn an_agreeing_answer_with_real_citations_keeps_the_diagnosis_and_is_sent_the_key() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let evidence = bench.evidence();
        let script: Arc<Script> =
            Arc::new(|_, brief| Turn::Text(answer("oom_kill", &documents(brief)[..1])));
        let (d, review, model) = bench.with(provider, policy(), script);
        assert_eq!(
            review.judgement,
            Judgement::Agreed,
            "{provider:?}: {review:#?}"
        );
        assert!(review.rejected_citations.is_empty(), "{review:#?}");
        assert_eq!((d.class, d.route), (evidence.class, evidence.route));
        assert_eq!(
            d.confidence, evidence.confidence,
            "the model never raises it"
        );
        assert!(d.llm);
        assert_eq!(review.investigation.steps, 1);
        assert_eq!(review.investigation.input_tokens, 900);
        let (headers, body) = &model.requests()[0];
        match provider {
            Provider::Openai => {
                assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
                assert_eq!(body["messages"][0]["role"], "system");
            }
            Provider::Anthropic => {
                assert_eq!(headers["x-api-key"], KEY);
                assert_eq!(headers["anthropic-version"], "2023-06-01");
                assert!(body["system"]
                    .as_str()
                    .is_some_and(|s| s.contains("oom_kill")));
            }
        }
        assert!(
            body["tools"].as_array().is_some_and(|t| t.len() >= 10),
            "{body:#}"
        );
        let brief = brief_of(provider, body);
        assert!(brief.contains("Evidence diagnosis: oom_kill"), "{brief}");
        assert!(
            !format!("{d:?}").contains(KEY),
            "the key never reaches the diagnosis"
        );
    }
}

#[test]
fn a_citation_retrieval_did_not_return_is_rejected_and_named() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|_, brief| {
            let mut cited = documents(brief)[..1].to_vec();
            cited.push("postmortem:the-outage-that-never-was".into());
            Turn::Text(answer("oom_kill", &cited))
        });
        let (d, review, _) = bench.with(provider, policy(), script);
        assert_eq!(
            review.rejected_citations,
            vec!["postmortem:the-outage-that-never-was".to_string()],
            "{provider:?}"
        );
        assert!(
            d.explanation.contains("Rejected citations"),
            "{}",
            d.explanation
        );
        assert!(d
            .citations
            .iter()
            .all(|c| c.id != "postmortem:the-outage-that-never-was"));
    }
}

#[test]
fn a_class_against_the_evidence_lowers_the_confidence_and_routes_to_review() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let evidence = bench.evidence();
        let script: Arc<Script> = Arc::new(|_, _| Turn::Text(answer("partition", &[])));
        let (d, review, _) = bench.with(provider, policy(), script);
        assert_eq!(review.judgement, Judgement::Disagreed, "{provider:?}");
        assert_eq!(d.class, evidence.class, "the model never picks the class");
        assert!(
            d.confidence < evidence.confidence && d.confidence < d.gate,
            "{d:#?}"
        );
        assert_eq!(d.route, Route::Review);
        assert!(d.explanation.contains("partition"), "{}", d.explanation);
    }
}

#[test]
fn a_malformed_answer_is_retried_once_then_rejected() {
    for provider in PROVIDERS {
        // Once malformed, then good: the retry is what saves it.
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|n, _| match n {
            0 => Turn::Text("It is probably memory. {\"class\": oom_kill".into()),
            _ => Turn::Text(format!("```json\n{}\n```", answer("oom_kill", &[]))),
        });
        let (_, review, model) = bench.with(provider, policy(), script);
        assert_eq!(
            review.judgement,
            Judgement::Agreed,
            "{provider:?}: {review:#?}"
        );
        assert!(review.investigation.retried_malformed);
        let second = brief_of(provider, &model.requests()[1].1);
        assert!(!second.is_empty(), "the retry keeps the conversation");

        // Malformed twice: rejected, the evidence's diagnosis stands.
        let bench = Bench::new();
        let evidence = bench.evidence();
        let script: Arc<Script> = Arc::new(|_, _| {
            Turn::Text(
                json!({"class": "oom_kill", "confidence": 2.0, "explanation": "x",
                "citations": [], "recommended_actions": []})
                .to_string(),
            )
        });
        let (d, review, model) = bench.with(provider, policy(), script);
        assert_eq!(
            review.judgement,
            Judgement::Rejected,
            "{provider:?}: {review:#?}"
        );
        assert!(matches!(
            review.investigation.ending,
            Ending::Rejected { .. }
        ));
        assert_eq!(model.requests().len(), 2, "retried once, not more");
        assert_eq!(
            (d.route, d.confidence),
            (evidence.route, evidence.confidence)
        );
    }
}

#[test]
fn an_endless_tool_loop_stops_at_the_step_bound_and_goes_to_review() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|n, _| {
            Turn::Calls(vec![(
                "kernel_events",
                json!({"entity": format!("cgroup/other-{n}")}),
            )])
        });
        let policy = LlmPolicy {
            max_steps: 4,
            ..policy()
        };
        let (d, review, model) = bench.with(provider, policy, script);
        assert_eq!(review.judgement, Judgement::Stopped, "{provider:?}");
        assert_eq!(
            review.investigation.ending,
            Ending::Stopped {
                bound: Bound::Steps
            }
        );
        assert_eq!(model.requests().len(), 4);
        assert_eq!(review.investigation.tool_calls.len(), 4);
        assert_eq!(d.route, Route::Review);
    }
}

#[test]
fn a_repeated_call_is_refused_and_counted() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|n, brief| match n {
            0 | 1 => Turn::Calls(vec![("kernel_events", json!({}))]),
            _ => Turn::Text(answer("oom_kill", &documents(brief)[..1])),
        });
        let (_, review, model) = bench.with(provider, policy(), script);
        assert_eq!(
            review.judgement,
            Judgement::Agreed,
            "{provider:?}: {review:#?}"
        );
        assert_eq!(review.investigation.refused_repeats, 1);
        assert_eq!(review.investigation.tool_calls, vec!["kernel_events"]);
        let results = tool_results(provider, &model.requests()[2].1);
        assert_eq!(results.len(), 2, "{results:?}");
        assert!(!results[0].1, "the first call ran: {results:?}");
        assert!(
            results[0].0.contains("OOM killer ended app"),
            "the real tool's output: {results:?}"
        );
        assert!(
            results[1].1 && results[1].0.contains("refused"),
            "{results:?}"
        );
    }
}

#[test]
fn a_slow_model_is_stopped_by_the_wall_time_bound() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|_, _| Turn::Slow(Duration::from_secs(10)));
        let policy = LlmPolicy {
            max_wall: Duration::from_millis(800),
            ..policy()
        };
        let started = Instant::now();
        let (d, review, _) = bench.with(provider, policy, script);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            review.investigation.ending,
            Ending::Stopped {
                bound: Bound::WallTime
            },
            "{provider:?}"
        );
        assert_eq!(d.route, Route::Review);
    }
}

#[test]
fn an_investigation_converges_within_ten_steps_on_the_real_tools() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let script: Arc<Script> = Arc::new(|n, brief| match n {
            0 => Turn::Calls(vec![
                ("process_exits", json!({})),
                ("resource_pressure", json!({"entity": APP})),
            ]),
            1 => Turn::Calls(vec![("recent_changes", json!({"entity": APP}))]),
            2 => Turn::Calls(vec![(
                "kernel_events",
                json!({"from_unix_ns": "yesterday"}),
            )]),
            _ => Turn::Text(answer("oom_kill", &documents(brief))),
        });
        let (d, review, model) = bench.with(provider, policy(), script);
        assert_eq!(
            review.judgement,
            Judgement::Agreed,
            "{provider:?}: {review:#?}"
        );
        assert_eq!(review.investigation.steps, 4);
        assert_eq!(
            review.investigation.tool_calls,
            vec![
                "process_exits",
                "resource_pressure",
                "recent_changes",
                "kernel_events"
            ]
        );
        // Bad arguments come back as an error the model can mend, not a failure.
        let last = tool_results(provider, &model.requests()[3].1);
        assert_eq!(last.len(), 4, "{last:?}");
        assert!(last[3].1, "{last:?}");
        assert_eq!(d.route, Route::Remediation);
        assert_eq!(review.investigation.input_tokens, 4 * 900);
    }
}

#[test]
fn a_refusing_provider_leaves_the_evidence_diagnosis_and_is_asked_again_next_time() {
    for provider in PROVIDERS {
        let bench = Bench::new();
        let evidence = bench.evidence();
        let script: Arc<Script> = Arc::new(|_, _| Turn::Status(401));
        let (d, review, _) = bench.with(provider, policy(), script);
        assert_eq!(review.judgement, Judgement::Failed, "{provider:?}");
        let Ending::Failed { error } = &review.investigation.ending else {
            panic!("{review:#?}")
        };
        assert!(
            error.contains("401") && error.contains("invalid api key"),
            "{error}"
        );
        assert!(!error.contains(KEY));
        assert_eq!(
            (d.route, d.confidence),
            (evidence.route, evidence.confidence)
        );
    }
}

#[test]
fn the_same_evidence_is_not_investigated_twice() {
    let bench = Bench::new();
    let (model, url) = serve(
        Provider::Openai,
        Arc::new(|_, _| Turn::Text(answer("oom_kill", &[]))),
    );
    let chat = HttpChat::new(Provider::Openai, &url, "scripted", None).expect("client");
    let service = bench.service(Some(Arc::new(SecondOpinion::new(Arc::new(chat), policy()))));
    let first = service.diagnose(&bench.incident);
    let again = service.diagnose(&bench.incident);
    assert_eq!(model.requests().len(), 1);
    assert!(!first.llm_review.expect("review").cached);
    assert!(again.llm_review.expect("review").cached);
    assert!(
        model.requests()[0].0.get("authorization").is_none(),
        "no key, no header"
    );
}
