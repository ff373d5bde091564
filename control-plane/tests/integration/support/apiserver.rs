//! A Kubernetes API server for tests, on a real socket, speaking the real JSON: an in-memory
//! object store behind the REST paths (`/api/v1/…`, `/apis/<group>/<version>/…`) with get,
//! list, watch (held open), create, patch (apply, merge and strategic patches merged as JSON,
//! lists of named objects item by item), replace (conditional on a resource version it
//! carries) and delete, the Eviction API (429 while a PodDisruptionBudget allows no
//! disruption), resource versions and `Status` errors, and pods' logs (`pods/{name}/log`, plain
//! text, with `container`, `previous`, `sinceTime`, `tailLines` and `timestamps` honoured). It
//! records every request so a test can assert exactly what was sent.
//!
//! Requests may carry a `/r/<replica>/` prefix (each replica's client gets its own base URL),
//! so a test can tell which replica sent what.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{body::Body, extract::Request, response::Response, Router};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Recorded {
    /// When the request arrived.
    pub at: std::time::Instant,
    pub replica: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// Requests to answer with an error instead of serving them.
struct Failure {
    method: String,
    path_suffix: String,
    remaining: usize,
    code: u16,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    version: u64,
    failures: Vec<Failure>,
    /// "namespace|pod|container|previous" → lines, each starting with its RFC 3339 time.
    logs: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct ApiServer {
    base: String,
    state: Arc<Mutex<State>>,
}

/// Where a path points: (group/version, namespace, plural, name, subresource).
struct Target {
    gv: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Target {
        gv,
        namespace,
        plural: plural.to_string(),
        name,
        sub,
    })
}

fn key(gv: &str, ns: Option<&str>, plural: &str, name: &str) -> String {
    format!("{gv}|{}|{plural}|{name}", ns.unwrap_or(""))
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: String) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

/// JSON merge (RFC 7386): maps merge, null deletes, everything else replaces — except lists
/// of objects keyed by `name` (containers, env), which merge item by item as server-side
/// apply and strategic merge treat them.
fn merge(target: &mut Value, patch: &Value) {
    let named = |v: &Value| {
        v.as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|i| i["name"].is_string()))
    };
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) if named(t) && named(p) => {
            let items = t.as_array_mut().expect("checked");
            for item in p.as_array().expect("checked") {
                match items.iter_mut().find(|i| i["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => items.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Whether `selector`'s `matchLabels` all hold in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| &labels[k] == v))
}

impl ApiServer {
    pub async fn start() -> Self {
        let server = Self {
            base: String::new(),
            state: Arc::default(),
        };
        let handler = server.clone();
        let app = Router::new().fallback(move |req: Request| {
            let handler = handler.clone();
            async move { handler.handle(req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}"),
            ..server
        }
    }

    /// The base URL a replica's client should use.
    pub fn url_for(&self, replica: &str) -> String {
        format!("{}/r/{replica}", self.base)
    }

    /// Stores an object as if someone had created it (`plural` in `gv`).
    pub fn seed(&self, gv: &str, plural: &str, mut object: Value) {
        let mut s = self.state.lock().expect("lock");
        s.version += 1;
        let ns = object["metadata"]["namespace"].as_str().map(str::to_string);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["metadata"]["resourceVersion"] = json!(s.version.to_string());
        s.objects
            .insert(key(gv, ns.as_deref(), plural, &name), object);
    }

    pub fn object(&self, gv: &str, ns: &str, plural: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .expect("lock")
            .objects
            .get(&key(gv, Some(ns), plural, name))
            .cloned()
    }

    /// Gives a pod's container a log (its previous run's with `previous`): lines that start
    /// with their RFC 3339 timestamp, as the kubelet keeps them.
    pub fn seed_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        text: &str,
    ) {
        self.state.lock().expect("lock").logs.insert(
            format!("{namespace}|{pod}|{container}|{previous}"),
            text.to_string(),
        );
    }

    /// GET `pods/{name}/log`: the stored lines from `sinceTime` on, the last `tailLines` of
    /// them, timestamps kept only when asked for.
    fn log(&self, t: &Target, params: &BTreeMap<String, String>) -> Response {
        let flag = |k: &str| params.get(k).is_some_and(|v| v == "true");
        let k = format!(
            "{}|{}|{}|{}",
            t.namespace.as_deref().unwrap_or_default(),
            t.name.as_deref().unwrap_or_default(),
            params
                .get("container")
                .map(String::as_str)
                .unwrap_or_default(),
            flag("previous")
        );
        let Some(text) = self.state.lock().expect("lock").logs.get(&k).cloned() else {
            return status(400, "BadRequest", format!("no log for {k}"));
        };
        let since: Option<jiff::Timestamp> = params.get("sinceTime").and_then(|s| s.parse().ok());
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| {
                let at: Option<jiff::Timestamp> =
                    l.split_whitespace().next().and_then(|w| w.parse().ok());
                since.is_none_or(|s| at.is_none_or(|a| a >= s))
            })
            .map(|l| {
                if flag("timestamps") {
                    l.to_string()
                } else {
                    l.split_once(' ').map_or(l, |(_, rest)| rest).to_string()
                }
            })
            .collect();
        if let Some(n) = params
            .get("tailLines")
            .and_then(|n| n.parse::<usize>().ok())
        {
            lines = lines.split_off(lines.len().saturating_sub(n));
        }
        Response::builder()
            .header("content-type", "text/plain")
            .body(Body::from(lines.join("\n") + "\n"))
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// Answers the next `times` `method` requests whose path ends with `path_suffix` with a
    /// `code` Status error (recorded like any request) instead of serving them.
    pub fn fail(&self, method: &str, path_suffix: &str, times: usize, code: u16) {
        self.state.lock().expect("lock").failures.push(Failure {
            method: method.to_string(),
            path_suffix: path_suffix.to_string(),
            remaining: times,
            code,
        });
    }

    async fn handle(&self, req: Request) -> Response {
        let params: BTreeMap<String, String> =
            axum::extract::Query::try_from_uri(req.uri()).map_or_else(|_| BTreeMap::new(), |q| q.0);
        let method = req.method().to_string();
        let full = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (replica, path) = match full.strip_prefix("/r/") {
            Some(rest) => {
                let (r, p) = rest.split_once('/').unwrap_or((rest, ""));
                (r.to_string(), format!("/{p}"))
            }
            None => (String::new(), full.clone()),
        };
        let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut s = self.state.lock().expect("lock");
        s.requests.push(Recorded {
            at: std::time::Instant::now(),
            replica,
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        if let Some(f) = s
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.ends_with(&f.path_suffix))
        {
            f.remaining -= 1;
            let code = f.code;
            return status(code, "InternalError", format!("injected failure of {path}"));
        }
        drop(s);
        let Some(t) = parse(&path) else {
            return status(404, "NotFound", format!("no route {path}"));
        };
        if method == "GET" && t.plural == "pods" && t.sub.as_deref() == Some("log") {
            return self.log(&t, &params);
        }
        let watch = query
            .split('&')
            .any(|q| q == "watch=true" || q == "watch=1");
        let mut s = self.state.lock().expect("lock");
        match (method.as_str(), &t.name) {
            ("GET", None) if watch => {
                drop(s);
                // Nothing changes behind a client's back here: hold the watch open.
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from_stream(futures::stream::pending::<
                        Result<Vec<u8>, Infallible>,
                    >()))
                    .unwrap_or_default()
            }
            ("GET", None) => {
                let prefix = format!("{}|", t.gv);
                let items: Vec<Value> = s
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        let parts: Vec<&str> = k.split('|').collect();
                        k.starts_with(&prefix)
                            && parts[2] == t.plural
                            && t.namespace.as_deref().is_none_or(|ns| parts[1] == ns)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                json_response(
                    200,
                    &json!({"apiVersion": t.gv, "kind": "List",
                            "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            }
            ("POST", None) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let k = key(&t.gv, t.namespace.as_deref(), &t.plural, &name);
                if s.objects.contains_key(&k) {
                    return status(
                        409,
                        "AlreadyExists",
                        format!("{} {name} already exists", t.plural),
                    );
                }
                s.version += 1;
                let mut object = body;
                object["metadata"]["resourceVersion"] = json!(s.version.to_string());
                object["metadata"]["uid"] = json!(format!("uid-{}", s.version));
                object["metadata"]["creationTimestamp"] = json!("2026-11-25T03:00:00Z");
                if let Some(ns) = &t.namespace {
                    object["metadata"]["namespace"] = json!(ns);
                }
                s.objects.insert(k, object.clone());
                json_response(201, &object)
            }
            ("POST", Some(name)) if t.plural == "pods" && t.sub.as_deref() == Some("eviction") => {
                // The Eviction API: refused with 429 while a PodDisruptionBudget selecting the
                // pod allows no disruption, else the pod is deleted.
                let ns = t.namespace.clone().unwrap_or_default();
                let k = key("v1", Some(&ns), "pods", name);
                let Some(pod) = s.objects.get(&k).cloned() else {
                    return status(404, "NotFound", format!("pods {name} not found"));
                };
                let budget = s.objects.iter().find(|(key, pdb)| {
                    key.starts_with(&format!("policy/v1|{ns}|poddisruptionbudgets|"))
                        && selects(&pdb["spec"]["selector"], &pod["metadata"]["labels"])
                        && pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1
                });
                if budget.is_some() {
                    return status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                    );
                }
                s.objects.remove(&k);
                json_response(
                    201,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
                )
            }
            (m, Some(name)) => {
                let k = key(&t.gv, t.namespace.as_deref(), &t.plural, name);
                match m {
                    "GET" => match s.objects.get(&k) {
                        Some(o) => json_response(200, o),
                        None => status(404, "NotFound", format!("{} {name} not found", t.plural)),
                    },
                    "PATCH" | "PUT" => {
                        let apply = content_type.starts_with("application/apply-patch");
                        let creates = apply && t.sub.is_none();
                        if !(s.objects.contains_key(&k) || creates) {
                            return status(
                                404,
                                "NotFound",
                                format!("{} {name} not found", t.plural),
                            );
                        }
                        // A replace carrying a resource version is conditional on it.
                        let stale = m == "PUT"
                            && body["metadata"]["resourceVersion"].is_string()
                            && s.objects.get(&k).is_some_and(|o| {
                                o["metadata"]["resourceVersion"]
                                    != body["metadata"]["resourceVersion"]
                            });
                        if stale {
                            return status(
                                409,
                                "Conflict",
                                format!("the object has been modified; please apply your changes to the latest version and try again ({} {name})", t.plural),
                            );
                        }
                        s.version += 1;
                        let version = s.version;
                        let object = s.objects.entry(k).or_insert_with(|| {
                            json!({"metadata": {"name": name, "uid": format!("uid-{version}"),
                                                 "creationTimestamp": "2026-11-25T03:00:00Z"}})
                        });
                        let mut patch = body;
                        if t.sub.as_deref() == Some("status") {
                            patch = json!({"status": patch["status"].clone()});
                        } else if let Some(p) = patch.as_object_mut() {
                            p.remove("status");
                        }
                        if m == "PUT" {
                            let meta = object["metadata"].clone();
                            *object = patch;
                            merge(&mut object["metadata"], &meta);
                        } else {
                            merge(object, &patch);
                        }
                        if let Some(ns) = &t.namespace {
                            object["metadata"]["namespace"] = json!(ns);
                        }
                        object["metadata"]["resourceVersion"] = json!(version.to_string());
                        json_response(200, object)
                    }
                    "DELETE" => {
                        s.objects.remove(&k);
                        json_response(
                            200,
                            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                        )
                    }
                    _ => status(405, "MethodNotAllowed", m.to_string()),
                }
            }
            (m, None) => status(405, "MethodNotAllowed", m.to_string()),
        }
    }
}
