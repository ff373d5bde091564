//! TLS on the control plane's listeners (rustls): the agents' gRPC ingest with mutual TLS
//! (each agent's client certificate verified against a configured CA, the node it may speak
//! for read from that certificate), and the REST API and console by config.
//!
//! The certificates reload when their files change (`reload`): each new connection takes the
//! current configuration, the ones already open keep theirs, so nothing is dropped.

mod files;
mod identity;
mod listener;
pub mod mint;
mod once;
mod reload;

pub use self::{
    files::{ServerFiles, TlsError},
    identity::PeerIdentity,
    listener::{Accepted, Incoming, Peer},
    once::Once,
    reload::ServerTls,
};
