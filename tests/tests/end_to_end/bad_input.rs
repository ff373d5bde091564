//! Must-show 4: malformed gRPC payloads and bad config files are refused with errors that
//! name the problem, and refusing them changes nothing.

use std::process::Command;

use bytes::{Buf, BufMut};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    Code, Status,
};
use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};
use vigil_tests::{bin_path, ControlPlane};

/// Sends arbitrary bytes as a gRPC message, the way a broken or hostile client would.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

async fn send_raw(cp: &ControlPlane, method: &str, body: Vec<u8>) -> Status {
    let channel = cp.channel("n").await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = format!("/vigil.agent.v1.AgentIngest/{method}")
        .parse()
        .expect("path");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .expect_err("the server must refuse this payload")
}

fn event(seq: u64) -> v1::Event {
    v1::Event {
        seq,
        kernel_time_ns: 1,
        time_unix_ns: 1,
        task: Some(v1::Task {
            pid: 1,
            tgid: 1,
            comm: "x".into(),
            ..Default::default()
        }),
        workload: Some(v1::Workload {
            kind: v1::WorkloadKind::Host as i32,
            key: "host/x".into(),
            ..Default::default()
        }),
        kind: Some(v1::event::Kind::Exit(v1::ProcessExit {
            exit_code: Some(1),
            signal: None,
            lifetime_ms: None,
            killed_by: None,
        })),
    }
}

/// A batch from node `n`.
fn batch_of(events: Vec<v1::Event>) -> v1::EventBatch {
    v1::EventBatch {
        node_name: "n".into(),
        events,
        stats: None,
    }
}

#[test]
fn malformed_grpc_payloads_are_refused_with_named_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _client = runtime.block_on(async {
        // Not protobuf at all: 0xff is an invalid wire type/tag. gRPC's status-code guide
        // maps request parse failures to INTERNAL; the message says what failed.
        let status = send_raw(&cp, "PushEvents", vec![0xff; 64]).await;
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert!(status.message().contains("decode"), "{status:?}");

        // Truncated: a valid batch cut in the middle of an event.
        let good = prost::Message::encode_to_vec(&batch_of(vec![event(1)]));
        let status = send_raw(&cp, "PushEvents", good[..good.len() - 5].to_vec()).await;
        assert!(status.message().contains("decode"), "{status:?}");

        let mut client = AgentIngestClient::new(cp.channel("n").await);
        // Well-formed protobuf, invalid content: INVALID_ARGUMENT naming the field.
        let mut no_kind = event(1);
        no_kind.kind = None;
        let status = client
            .push_events(batch_of(vec![no_kind]))
            .await
            .expect_err("missing kind");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("events[0]: field `kind` is missing"),
            "{status:?}"
        );

        let status = client
            .push_events(batch_of(vec![event(5), event(4)]))
            .await
            .expect_err("decreasing seq");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("events[1]: seq 4 does not follow 5"),
            "{status:?}"
        );

        let status = client
            .hello(v1::NodeHello {
                node_name: String::new(),
                ..Default::default()
            })
            .await
            .expect_err("empty node");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("node_name is empty"),
            "{status:?}"
        );

        // Oversized: 5 MiB against the default 4 MiB limit.
        let huge = v1::EventBatch {
            node_name: "x".repeat(5 << 20),
            events: vec![],
            stats: None,
        };
        let status = client.push_events(huge).await.expect_err("oversized");
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(
            status.message().contains("message length too large"),
            "{status:?}"
        );

        client
    });
    // None of that stored anything, and the server still serves a good batch.
    assert!(
        api.events("").is_empty(),
        "refused payloads must not be stored"
    );
    runtime.block_on(async {
        let mut client = AgentIngestClient::new(cp.channel("n").await);
        let ack = client
            .push_events(batch_of(vec![event(1), event(2)]))
            .await
            .expect("a good batch after bad ones")
            .into_inner();
        assert_eq!(
            (ack.accepted, ack.duplicates, ack.acked_through_seq),
            (2, 0, 2)
        );
        // A retry of the same batch is recognised, not stored twice.
        let ack = client
            .push_events(batch_of(vec![event(1), event(2)]))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!((ack.accepted, ack.duplicates), (0, 2));
        let hello = client
            .hello(v1::NodeHello {
                node_name: "n".into(),
                ..Default::default()
            })
            .await
            .expect("hello")
            .into_inner();
        assert_eq!(
            hello.last_seq, 2,
            "a reconnecting agent continues after the stored sequence"
        );
    });
    assert_eq!(api.events("").len(), 2);
}

fn run_with_config(binary: &str, config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(bin_path(binary))
        .arg("--config")
        .arg(&path)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_files_are_refused_naming_file_and_field() {
    let cases = [
        (
            "vigil-control-plane",
            "[rules]\ncrash_loop_restart = 5\n",
            "crash_loop_restart",
        ),
        (
            "vigil-control-plane",
            "grpc_listen = \"localhost\"\n",
            "grpc_listen",
        ),
        (
            "vigil-control-plane",
            "[rules]\ncrash_loop_restarts = 1\n",
            "rules.crash_loop_restarts",
        ),
        ("vigil-control-plane", "[ingest\n", "bad.toml"),
        (
            "vigil-agent",
            "[kernel]\nring_buffer_bytes = 1000\n",
            "kernel.ring_buffer_bytes",
        ),
        (
            "vigil-agent",
            "[control_plane]\nendpoint = \"127.0.0.1:7070\"\n",
            "control_plane.endpoint",
        ),
        ("vigil-agent", "[buffer]\nmax_events = -3\n", "max_events"),
        ("vigil-agent", "node = \"x\"\n", "unknown field `node`"),
    ];
    for (binary, config, expected) in cases {
        let (code, stderr) = run_with_config(binary, config);
        assert_eq!(
            code,
            Some(1),
            "{binary} must exit 1 for {config:?}; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{binary} error for {config:?} should name {expected:?}:\n{stderr}"
        );
        assert!(
            stderr.contains("bad.toml"),
            "{binary} error should name the file:\n{stderr}"
        );
    }
}
