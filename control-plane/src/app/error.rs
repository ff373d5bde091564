//! Why a control plane could not start or stopped.

use std::net::SocketAddr;

use crate::domain::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("kubernetes.enabled is set but no API client configuration was found (set kubernetes.api_server, KUBECONFIG, or run in a pod with a service account)")]
    KubeConfig {
        #[source]
        source: kube::config::InferConfigError,
    },
    #[error("kubernetes.api_server {uri:?} is not a URL")]
    KubeUri {
        uri: String,
        #[source]
        source: ::http::uri::InvalidUri,
    },
    #[error("cannot make a Kubernetes API client")]
    KubeClient {
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("leader election on Lease {lease} failed (RBAC: get/create/patch leases in the namespace; or set kubernetes.leader_election = false for a single replica)")]
    Election {
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error(transparent)]
    Otlp(#[from] crate::adapters::otlp::OtlpError),
    #[error("diagnosis.llm.api_key_env names {env}, which is not set: export the key in it, or remove api_key_env for an endpoint that needs no key")]
    LlmKey { env: String },
    #[error("cannot make the LLM client for {url}")]
    LlmClient {
        url: String,
        #[source]
        source: crate::domain::diagnose::llm::LlmError,
    },
    #[error("{field} names the environment variable {env}, which is not set: export it")]
    MissingEnv { field: &'static str, env: String },
    #[error("slack.webhook_url_env names {env}, whose value is not an http(s) URL: put the incoming webhook's URL (https://hooks.slack.com/services/…) in it")]
    SlackUrl { env: String },
    #[error("cannot start the Slack notifier's thread")]
    SlackThread(#[source] std::io::Error),
    #[error("remediation.runtime is \"kubernetes\" but no cluster is watched: set kubernetes.enabled = true")]
    NoClusterRuntime,
    #[error(transparent)]
    Playbook(#[from] crate::adapters::playbooks::PlaybookError),
    #[error(transparent)]
    AuditKey(#[from] crate::adapters::audit_key::AuditKeyError),
    #[error(transparent)]
    TokenFile(#[from] crate::adapters::access::token_file::TokenFileError),
    #[error(transparent)]
    Access(#[from] crate::domain::access::AccessError),
    #[error(transparent)]
    Corpus(#[from] crate::domain::retrieve::ports::CorpusError),
    #[error("cannot listen on {addr} for {what}. Is another process using the port? Set `{field}` in the config")]
    Bind {
        what: &'static str,
        field: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(crate::adapters::tls::TlsError),
    #[error("gRPC server failed")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed")]
    Http(#[source] std::io::Error),
}
