//! Serving a node's gRPC services until told to stop.

/// How long open streams (Deliver, chaincode, events) may take to finish
/// once a server is told to stop; then they are cut.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the server that `serve` builds around a shutdown future: once
/// `shutdown` resolves, open streams get [`SHUTDOWN_GRACE`] to finish
/// before the server is dropped. tonic's graceful stop alone waits for
/// every stream, and long-lived ones (a peer's Deliver from this orderer, a
/// chaincode's stream to its peer) never end by themselves.
pub async fn with_grace<E, F>(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    serve: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> F,
) -> Result<(), E>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    let (signalled, stopping) = tokio::sync::oneshot::channel::<()>();
    let server = serve(Box::pin(async move {
        shutdown.await;
        let _ = signalled.send(());
    }));
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            match stopping.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                Err(_) => std::future::pending().await,
            }
        } => Ok(()),
    }
}

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bounds every node puts on its listener. Each is a config value
/// (`limits:` in the node's YAML) with a default sized for this kind of
/// machine; over a bound a client gets a clear answer, never a hang.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Open client connections; a connection beyond it is closed at once.
    pub connections_max: usize,
    /// Concurrent HTTP/2 streams (calls) on one connection.
    pub streams_per_connection_max: u32,
    /// Requests being handled across the node; beyond it a call is answered
    /// RESOURCE_EXHAUSTED at once. A streaming call counts until its
    /// response starts (streams are bounded by the two limits above).
    pub requests_in_flight_max: usize,
    /// How long a new connection has to finish its TLS handshake (the
    /// client's first bytes after the node's first answer); a connection
    /// that stalls before that is closed, so stalled handshakes cannot hold
    /// the connection slots.
    #[serde(with = "crate::duration")]
    pub handshake_timeout: Duration,
    /// The node pings each connection after this long without hearing from
    /// it (HTTP/2 PING; Fabric's `keepalive` server interval)…
    #[serde(with = "crate::duration")]
    pub keepalive_interval: Duration,
    /// …and closes it if the ping is not answered within this.
    #[serde(with = "crate::duration")]
    pub keepalive_timeout: Duration,
    /// A connection on which no byte moves either way for this long is
    /// closed (a half-open connection, or a client that completed TLS but
    /// never speaks HTTP/2). Keepalive pings count, so it must exceed
    /// `keepalive_interval + keepalive_timeout`, or healthy idle
    /// connections (a Deliver stream on a quiet channel) would be cut.
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            connections_max: 4096,
            streams_per_connection_max: 4096,
            requests_in_flight_max: 16_384,
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl ListenerLimits {
    /// Refuses bounds that would cut healthy connections or admit nothing.
    pub fn check(&self) -> Result<(), String> {
        if self.connections_max == 0
            || self.streams_per_connection_max == 0
            || self.requests_in_flight_max == 0
        {
            return Err("listener limits: connections_max, streams_per_connection_max and requests_in_flight_max must be above 0".into());
        }
        if self.handshake_timeout.is_zero() || self.keepalive_interval.is_zero() {
            return Err(
                "listener limits: handshake_timeout and keepalive_interval must be above 0".into(),
            );
        }
        if self.idle_timeout <= self.keepalive_interval + self.keepalive_timeout {
            return Err(format!(
                "listener limits: idle_timeout ({:?}) must exceed keepalive_interval + keepalive_timeout ({:?}), or idle but healthy connections are cut",
                self.idle_timeout,
                self.keepalive_interval + self.keepalive_timeout
            ));
        }
        Ok(())
    }
}

/// A node's gRPC server with its TLS and [`ListenerLimits`] applied.
pub type NodeServer = tonic::transport::Server<NodeLayers>;

/// The layers of every node's server: gRPC metrics outside the in-flight
/// bound (a refused request is counted too).
pub type NodeLayers = tower_layer::Stack<
    InFlightLimit,
    tower_layer::Stack<crate::grpc_metrics::GrpcMetricsLayer, tower_layer::Identity>,
>;

/// Its services, ready to [`run`].
pub type NodeRouter = tonic::transport::server::Router<NodeLayers>;

/// The server every node starts from: at most
/// `limits.streams_per_connection_max` streams per connection, keepalive
/// pings, Fabric's gRPC server metrics in `metrics`, and the node-wide
/// in-flight bound. TLS is [`run`]'s.
pub fn server(
    limits: &ListenerLimits,
    metrics: &crate::metrics::Registry,
) -> Result<NodeServer, String> {
    limits.check()?;
    Ok(tonic::transport::Server::builder()
        .max_concurrent_streams(limits.streams_per_connection_max)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(crate::grpc_metrics::GrpcMetricsLayer(
            crate::grpc_metrics::GrpcMetrics::register(metrics),
        ))
        .layer(InFlightLimit::new(limits.requests_in_flight_max)))
}

/// Serves `router` over TLS (`tls`: [`crate::Tls::server`]) on `listener`
/// (at most `limits.connections_max` connections) until `shutdown`
/// resolves, then gives long streams [`SHUTDOWN_GRACE`].
pub async fn run(
    router: NodeRouter,
    listener: TcpListener,
    limits: &ListenerLimits,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let incoming = tls_incoming(incoming(listener, limits), tls);
    with_grace(shutdown, |shutdown| async move {
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// Binds `address` (the caller may bind `127.0.0.1:0` and read the port).
pub async fn bind(address: &str) -> Result<TcpListener, String> {
    let address: SocketAddr = address
        .parse()
        .map_err(|e| format!("listen address {address}: {e}"))?;
    TcpListener::bind(address)
        .await
        .map_err(|e| format!("listening on {address}: {e}"))
}

/// A connection holding one of the listener's connection permits, closed
/// (its reads and writes fail with `TimedOut`) once it stalls: before its
/// handshake is done within `handshake_timeout`, afterwards when nothing
/// moved for `idle_timeout`.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    accepted: Instant,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    /// The node has written to the connection (its side of the handshake).
    answered: bool,
    /// The client spoke after the node's first answer.
    handshaken: bool,
    last_activity: Instant,
    /// Fires at or before the current deadline; re-armed lazily.
    timer: Pin<Box<Sleep>>,
}

impl LimitedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, limits: &ListenerLimits) -> Self {
        let now = Instant::now();
        LimitedStream {
            stream,
            _permit: permit,
            accepted: now,
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            answered: false,
            handshaken: false,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.handshake_timeout)),
        }
    }

    fn deadline(&self) -> Instant {
        if self.handshaken {
            self.last_activity + self.idle_timeout
        } else {
            self.accepted + self.handshake_timeout
        }
    }

    /// Ready with an error once the connection's deadline has passed.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                let (what, after) = if self.handshaken {
                    ("idle", self.idle_timeout)
                } else {
                    ("handshake not finished", self.handshake_timeout)
                };
                crate::refusal!(
                    "closed the connection from {:?}: {what} after {after:?} (limits.{})",
                    self.stream.peer_addr().ok(),
                    if self.handshaken {
                        "idle_timeout"
                    } else {
                        "handshake_timeout"
                    }
                );
                return Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connection {what} after {after:?}"),
                ));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn read_some(&mut self) {
        self.last_activity = Instant::now();
        if self.answered {
            self.handshaken = true;
        }
    }

    fn wrote_some(&mut self) {
        self.last_activity = Instant::now();
        self.answered = true;
    }
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.read_some();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.poll_stalled(cx).map(Err),
            failed => failed,
        }
    }
}

impl LimitedStream {
    /// A write that cannot proceed (the client stopped reading) is subject
    /// to the same deadline as a read.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.wrote_some();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.poll_stalled(cx).map(Err),
            failed => failed,
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.after_write(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The accepted connections of `listener` (TCP_NODELAY, as tonic's own
/// listener sets it), at most `limits.connections_max` open at once: one
/// more is closed as soon as it is accepted (and logged), so a flood of
/// connections cannot exhaust the node's file descriptors. Each closes
/// itself once it stalls ([`LimitedStream`]).
pub fn incoming(
    listener: TcpListener,
    limits: &ListenerLimits,
) -> impl tokio_stream::Stream<Item = Result<LimitedStream, std::io::Error>> + use<> {
    use tokio_stream::StreamExt as _;
    let limits = limits.clone();
    let connections_max = limits.connections_max;
    let permits = Arc::new(Semaphore::new(connections_max));
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(move |accepted| {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => return Some(Err(error)),
            };
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => Some(Ok(LimitedStream::new(stream, permit, &limits))),
                Err(_) => {
                    crate::refusal!(
                        "refused a connection from {:?}: {connections_max} connections are open (limits.connections_max)",
                        stream.peer_addr().ok()
                    );
                    None
                }
            }
        })
}

/// TLS handshakes of `incoming`'s connections, run side by side (a slow
/// client holds up nobody; each is bounded by its connection's handshake
/// timeout); the connections whose handshake succeeded, in the order they
/// finish. Failed handshakes are logged within the refusal budget.
pub fn tls_incoming<S>(
    incoming: S,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) -> impl tokio_stream::Stream<
    Item = Result<tokio_rustls::server::TlsStream<LimitedStream>, std::io::Error>,
> + use<S>
where
    S: tokio_stream::Stream<Item = Result<LimitedStream, std::io::Error>> + Send + 'static,
{
    use tokio_stream::StreamExt as _;
    let (ready, receiver) = tokio::sync::mpsc::channel(256);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        let mut incoming = Box::pin(incoming);
        loop {
            let next = tokio::select! {
                next = incoming.next() => next,
                () = ready.closed() => return,
            };
            let Some(accepted) = next else { return };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    if ready.send(Err(error)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let from = stream.stream.peer_addr().ok();
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let _ = ready.send(Ok(tls)).await;
                    }
                    Err(error) => {
                        crate::refusal!("TLS handshake with {from:?} failed: {error}");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// A tower layer answering RESOURCE_EXHAUSTED once `max` requests are in
/// flight across the node (every service behind it shares the bound).
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlightLimit {
    pub fn new(max: usize) -> Self {
        InFlightLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl<S> tower_layer::Layer<S> for InFlightLimit {
    type Service = InFlightLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimited {
            inner,
            limit: self.clone(),
        }
    }
}

/// A service behind [`InFlightLimit`].
#[derive(Debug, Clone)]
pub struct InFlightLimited<S> {
    inner: S,
    limit: InFlightLimit,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tonic::codegen::Service<http::Request<B>> for InFlightLimited<S>
where
    S: tonic::codegen::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match Arc::clone(&self.limit.permits).try_acquire_owned() {
            Ok(permit) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                let status = tonic::Status::resource_exhausted(format!(
                    "this node is handling {} requests, its limit (limits.requests_in_flight_max); retry later",
                    self.limit.max
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// A service that answers once it is released.
    #[derive(Clone)]
    struct Held(tokio::sync::watch::Receiver<bool>);

    impl tonic::codegen::Service<http::Request<()>> for Held {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut released = self.0.clone();
            Box::pin(async move {
                let _ = released.wait_for(|released| *released).await;
                Ok(http::Response::new(tonic::body::Body::empty()))
            })
        }
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_limit_are_refused_at_once() {
        use tonic::codegen::Service as _;
        use tower_layer::Layer as _;
        let (release, released) = tokio::sync::watch::channel(false);
        let mut service = InFlightLimit::new(2).layer(Held(released));
        let first = service.call(http::Request::new(()));
        let second = service.call(http::Request::new(()));
        let refused = service
            .call(http::Request::new(()))
            .await
            .expect("answered");
        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("requests_in_flight_max"),
            "{status:?}"
        );
        // Once the first two finish, there is room again.
        release.send_replace(true);
        for call in [first, second] {
            let answer = call.await.expect("answered");
            assert!(tonic::Status::from_header_map(answer.headers()).is_none());
        }
        let fourth = service
            .call(http::Request::new(()))
            .await
            .expect("answered");
        assert!(tonic::Status::from_header_map(fourth.headers()).is_none());
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed() {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        // The server side: keeps what it admits until told to drop the first.
        let (admitted_tx, mut admitted_rx) = tokio::sync::mpsc::channel(8);
        let (drop_first_tx, mut drop_first_rx) = tokio::sync::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let limits = ListenerLimits {
                connections_max: 2,
                ..ListenerLimits::default()
            };
            let mut accepted = Box::pin(incoming(listener, &limits));
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    next = accepted.next() => {
                        let Some(Ok(stream)) = next else { return };
                        held.push(stream);
                        let _ = admitted_tx.send(held.len()).await;
                    }
                    Some(()) = drop_first_rx.recv() => { held.remove(0); }
                }
            }
        });
        let _a = TcpStream::connect(address).await.expect("a");
        let _b = TcpStream::connect(address).await.expect("b");
        assert_eq!(admitted_rx.recv().await, Some(1));
        assert_eq!(admitted_rx.recv().await, Some(2));
        // The third is accepted by the kernel, then closed by the node.
        let mut c = TcpStream::connect(address).await.expect("c");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut c, &mut byte),
        )
        .await
        .expect("closed promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // A closed connection frees its place.
        drop_first_tx.send(()).await.expect("drop");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _d = TcpStream::connect(address).await.expect("d");
        let admitted = tokio::time::timeout(std::time::Duration::from_secs(5), admitted_rx.recv())
            .await
            .expect("admitted");
        assert_eq!(admitted, Some(2));
    }

    /// Accepts with `limits` and reads each connection until it fails,
    /// echoing a byte back for every byte read (a handshake in miniature);
    /// reports each connection's end.
    async fn echoing_server(
        limits: ListenerLimits,
    ) -> (SocketAddr, tokio::sync::mpsc::Receiver<std::io::Result<()>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let (ended_tx, ended_rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut accepted = Box::pin(incoming(listener, &limits));
            while let Some(Ok(mut stream)) = accepted.next().await {
                let ended = ended_tx.clone();
                tokio::spawn(async move {
                    let mut byte = [0u8; 1];
                    let end = loop {
                        match stream.read(&mut byte).await {
                            Ok(0) => break Ok(()),
                            Ok(_) => {
                                if let Err(e) = stream.write_all(&byte).await {
                                    break Err(e);
                                }
                            }
                            Err(e) => break Err(e),
                        }
                    };
                    let _ = ended.send(end).await;
                });
            }
        });
        (address, ended_rx)
    }

    fn short_limits() -> ListenerLimits {
        ListenerLimits {
            handshake_timeout: Duration::from_millis(300),
            keepalive_interval: Duration::from_millis(100),
            keepalive_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(600),
            ..ListenerLimits::default()
        }
    }

    async fn ended(ended: &mut tokio::sync::mpsc::Receiver<std::io::Result<()>>) -> std::io::Error {
        tokio::time::timeout(Duration::from_secs(10), ended.recv())
            .await
            .expect("the node closed the connection")
            .expect("an end")
            .expect_err("ended by the node's deadline")
    }

    #[tokio::test]
    async fn a_connection_that_never_finishes_its_handshake_is_closed() {
        use tokio::io::AsyncReadExt;
        let (address, mut ended_rx) = echoing_server(short_limits()).await;
        // Connects and says nothing.
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let error = ended(&mut ended_rx).await;
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("handshake"), "{error}");
        let mut byte = [0u8; 1];
        assert!(matches!(silent.read(&mut byte).await, Ok(0) | Err(_)));
        // Speaks once, gets the answer, then stalls: still a handshake.
        let mut stalled = TcpStream::connect(address).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut stalled, b"h")
            .await
            .expect("write");
        stalled.read_exact(&mut byte).await.expect("answer");
        let error = ended(&mut ended_rx).await;
        assert!(error.to_string().contains("handshake"), "{error}");
    }

    #[tokio::test]
    async fn a_connection_is_closed_when_idle_and_kept_while_it_speaks() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limits = short_limits();
        let idle = limits.idle_timeout;
        let (address, mut ended_rx) = echoing_server(limits).await;
        let mut client = TcpStream::connect(address).await.expect("connect");
        let mut byte = [0u8; 1];
        // Speaking every third of the idle timeout, for three idle timeouts
        // (well past the handshake timeout), keeps it open.
        let until = tokio::time::Instant::now() + idle * 3;
        while tokio::time::Instant::now() < until {
            client.write_all(b"x").await.expect("write");
            client.read_exact(&mut byte).await.expect("echo");
            tokio::time::sleep(idle / 3).await;
        }
        assert!(ended_rx.try_recv().is_err(), "closed while speaking");
        // Silence closes it.
        let error = ended(&mut ended_rx).await;
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("idle"), "{error}");
    }

    #[test]
    fn limits_that_would_cut_healthy_connections_are_refused() {
        let limits = ListenerLimits {
            idle_timeout: Duration::from_secs(60),
            ..ListenerLimits::default()
        };
        let error = limits.check().expect_err("refused");
        assert!(error.contains("idle_timeout"), "{error}");
        assert!(ListenerLimits::default().check().is_ok());
    }
}
