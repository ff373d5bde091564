//! MCP as an engineer's agent uses it: a real control plane holding a real OOM-kill incident
//! (ingested as the agent's stream would), and rmcp's own client over a real socket
//! (streamable HTTP at `/mcp`) and over stdio (`vigil mcp`, a child process with the REST API
//! behind it). Both list the read-only tools and call them on the incident.

use rmcp::{
    model::{CallToolRequestParams, CallToolResult, ClientConfig},
    service::{RoleClient, RunningService},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
        TokioChildProcess,
    },
    ServiceExt,
};
use serde_json::{json, Value};

use crate::support::plane::{Plane, APP};

async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The JSON a successful call answered.
fn answer(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let text = result.content[0]
        .as_text()
        .map(|t| t.text.clone())
        .expect("text content");
    serde_json::from_str(&text).expect("the text is JSON")
}

fn error_text(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    result.content[0]
        .as_text()
        .map(|t| t.text.clone())
        .expect("text content")
}

/// What every client must see: the tools, read-only, and two of them answering on the incident.
async fn investigate(client: &RunningService<RoleClient, ClientConfig>) {
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "list_incidents",
        "get_incident",
        "kernel_events",
        "process_exits",
        "edge_stats",
        "resource_pressure",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        tools.iter().all(|t| t
            .annotations
            .as_ref()
            .is_some_and(|a| a.read_only_hint == Some(true))),
        "every tool is marked read-only"
    );
    let kernel = tools
        .iter()
        .find(|t| t.name == "kernel_events")
        .expect("kernel_events");
    assert!(kernel.input_schema.contains_key("properties"), "{kernel:?}");

    let open = answer(&call(client, "list_incidents", json!({"status": "open"})).await);
    assert_eq!(open[0]["id"], 1, "{open:#}");
    assert_eq!(open[0]["kind"], "oom_kill", "{open:#}");

    let detail = answer(&call(client, "get_incident", json!({"id": 1})).await);
    assert_eq!(detail["diagnosis"]["class"], "oom_kill", "{detail:#}");
    assert!(!detail["evidence"].as_array().expect("evidence").is_empty());

    let events = answer(&call(client, "kernel_events", json!({"incident": 1})).await);
    assert_eq!(events["tool"], "kernel_events");
    assert_eq!(events["entity"], APP, "{events:#}");
    assert_eq!(events["votes"][0]["class"], "oom_kill", "{events:#}");

    let exits = answer(&call(client, "process_exits", json!({"entity": APP})).await);
    assert_eq!(exits["entity"], APP, "{exits:#}");

    // Mistakes come back as tool errors the agent can read and mend.
    let unknown = error_text(&call(client, "restart_pod", json!({})).await);
    assert!(
        unknown.contains("restart_pod") && unknown.contains("kernel_events"),
        "{unknown}"
    );
    let missing = error_text(&call(client, "get_incident", json!({"id": 999})).await);
    assert!(missing.contains("999"), "{missing}");
    let bad = error_text(
        &call(
            client,
            "edge_stats",
            json!({"incident": 1, "colour": "red"}),
        )
        .await,
    );
    assert!(bad.contains("colour"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_streamable_http_lists_the_tools_and_calls_them_on_a_real_incident() {
    let plane = Plane::start().await;
    let url = format!("{}/mcp", plane.base());
    // Without a token the server does not even say hello.
    let anonymous = ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_uri(url.clone()))
        .await;
    assert!(anonymous.is_err(), "MCP without a token must be refused");
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(plane.running_token()),
    );
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("MCP initialize over HTTP");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("vigil")
    );
    investigate(&client).await;
    client.cancel().await.expect("close");
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_stdio_reaches_the_same_tools_through_vigil_mcp() {
    let plane = Plane::start().await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args(["--api", &plane.base(), "--token-file"])
        .arg(plane.token_file())
        .arg("mcp");
    let transport = TokioChildProcess::new(command).expect("spawn vigil mcp");
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("MCP initialize over stdio");
    investigate(&client).await;
    client.cancel().await.expect("close");
    plane.stop().await;
}
