//! One accept loop for a listener, with or without TLS: connections are accepted and their
//! handshakes run in their own tasks (a client that stalls its handshake delays nobody else),
//! then handed to the server — tonic (`Stream` of `Accepted`) or axum (`Listener`).

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tracing::warn;

use super::{identity::PeerIdentity, once::Once, reload::ServerTls};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted but not yet taken by the server.
const BACKLOG: usize = 128;

/// An accepted connection: plain TCP, or TLS over it.
pub enum Accepted {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// What a request knows of its connection (a request extension, through tonic's `Connected`).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// The verified client certificate's names; `None` without a client certificate.
    pub identity: Option<Arc<PeerIdentity>>,
}

impl Accepted {
    fn peer(&self) -> Peer {
        match self {
            Accepted::Plain(tcp) => Peer {
                addr: tcp.peer_addr().ok(),
                identity: None,
            },
            Accepted::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                Peer {
                    addr: tcp.peer_addr().ok(),
                    identity: session
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(PeerIdentity::of)
                        .map(Arc::new),
                }
            }
        }
    }
}

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer()
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Accepted::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Accepted::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_flush(cx),
            Accepted::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Accepted::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Accepted::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Accepted::Plain(s) => s.is_write_vectored(),
            Accepted::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections a listener accepted, ready for a server.
pub struct Incoming {
    rx: mpsc::Receiver<(Accepted, SocketAddr)>,
    local: SocketAddr,
}

impl Incoming {
    /// Starts accepting on `listener`; with `tls`, each connection's handshake first.
    /// `refused` is told of each client refused (an unknown CA, no certificate, a timeout).
    /// The loop ends when the `Incoming` is dropped.
    pub fn start(
        listener: TcpListener,
        tls: Option<Arc<ServerTls>>,
        refused: Arc<dyn Fn() + Send + Sync>,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let logged = Arc::new(Once::default());
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors, typically: wait rather than spin.
                            warn!(%local, error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let Some(tls) = &tls else {
                    if tx.send((Accepted::Plain(tcp), addr)).await.is_err() {
                        return;
                    }
                    continue;
                };
                let acceptor = TlsAcceptor::from(tls.config());
                let tx = tx.clone();
                let refused = refused.clone();
                let logged = logged.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((Accepted::Tls(Box::new(stream)), addr)).await;
                        }
                        Ok(Err(e)) => {
                            refused();
                            if logged.first(addr.ip().to_string()) {
                                warn!(peer = %addr, error = %e,
                                    "TLS handshake refused (logged once per address)");
                            }
                        }
                        Err(_) => {
                            refused();
                            if logged.first(addr.ip().to_string()) {
                                warn!(peer = %addr, "TLS handshake not finished in time");
                            }
                        }
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }

    /// As tonic takes its connections.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = io::Result<Accepted>> {
        let connections = tokio_stream::wrappers::ReceiverStream::new(self.rx);
        tokio_stream::StreamExt::map(connections, |(io, _)| Ok(io))
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Accepted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Accepted, SocketAddr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
