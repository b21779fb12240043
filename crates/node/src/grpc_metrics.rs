//! Fabric's gRPC server metrics, as a tower layer on every node's server:
//! `grpc_server_{unary,stream}_requests_received{service,method}`,
//! `…_requests_completed` and `…_request_duration{service,method,code}`,
//! and for streams `grpc_server_stream_messages_{received,sent}`.
//!
//! Labels as Fabric's: `service` is the gRPC service with dots made
//! underscores (`protos_Endorser`), `method` the method, `code` the gRPC
//! status name (`OK`, `PermissionDenied`, …). A call is complete when its
//! response ends (its trailers carry the status) or is dropped (`Canceled`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tonic::codegen::{Bytes, http};

use crate::metrics::{Counter, DEFAULT_BUCKETS, Family, Histogram, Registry};

/// The methods that stream (every other one is unary): Broadcast, the
/// Deliver family, chaincode streams, the gateway's event stream, cluster
/// traffic.
const STREAMING: &[&str] = &[
    "Broadcast",
    "Deliver",
    "DeliverFiltered",
    "DeliverWithPrivateData",
    "Register",
    "Connect",
    "ChaincodeEvents",
    "Step",
];

/// One kind's (unary or stream) families.
struct Kind {
    received: Arc<Family<Counter>>,
    completed: Arc<Family<Counter>>,
    duration: Arc<Family<Histogram>>,
}

/// The families, shared by every connection's layer.
pub struct GrpcMetrics {
    unary: Kind,
    stream: Kind,
    messages_received: Arc<Family<Counter>>,
    messages_sent: Arc<Family<Counter>>,
}

impl std::fmt::Debug for GrpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetrics").finish_non_exhaustive()
    }
}

impl GrpcMetrics {
    /// The families in `registry`; None where it is disabled (the layer
    /// then passes calls through untouched).
    pub fn register(registry: &Registry) -> Option<Arc<Self>> {
        if registry.is_disabled() {
            return None;
        }
        // (name, help) of the received, completed and duration families.
        let kind = |families: [(&'static str, &'static str); 3]| Kind {
            received: registry.counter(families[0].0, families[0].1, &["service", "method"]),
            completed: registry.counter(
                families[1].0,
                families[1].1,
                &["service", "method", "code"],
            ),
            duration: registry.histogram(
                families[2].0,
                families[2].1,
                &["service", "method", "code"],
                DEFAULT_BUCKETS,
            ),
        };
        Some(Arc::new(GrpcMetrics {
            unary: kind([
                (
                    "grpc_server_unary_requests_received",
                    "The number of unary requests received.",
                ),
                (
                    "grpc_server_unary_requests_completed",
                    "The number of unary requests completed.",
                ),
                (
                    "grpc_server_unary_request_duration",
                    "The time to complete a unary request.",
                ),
            ]),
            stream: kind([
                (
                    "grpc_server_stream_requests_received",
                    "The number of stream requests received.",
                ),
                (
                    "grpc_server_stream_requests_completed",
                    "The number of stream requests completed.",
                ),
                (
                    "grpc_server_stream_request_duration",
                    "The time to complete a stream request.",
                ),
            ]),
            messages_received: registry.counter(
                "grpc_server_stream_messages_received",
                "The number of stream messages received.",
                &["service", "method"],
            ),
            messages_sent: registry.counter(
                "grpc_server_stream_messages_sent",
                "The number of stream messages sent.",
                &["service", "method"],
            ),
        }))
    }
}

/// `/pkg.Service/Method` → (`pkg_Service`, `Method`).
fn service_method(path: &str) -> (String, String) {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = path.rsplit_once('/').unwrap_or(("unknown", path));
    (service.replace('.', "_"), method.to_owned())
}

/// The name Fabric's metrics give a gRPC status code.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// Records one call's completion once.
struct Call {
    metrics: Arc<GrpcMetrics>,
    streaming: bool,
    service: String,
    method: String,
    started: Instant,
    done: bool,
}

impl Call {
    fn complete(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let kind = if self.streaming {
            &self.metrics.stream
        } else {
            &self.metrics.unary
        };
        let labels = [self.service.as_str(), self.method.as_str(), code_name(code)];
        kind.completed.with(&labels).inc();
        kind.duration.with(&labels).observe_since(self.started);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The response was dropped before it ended: the client went away.
        self.complete(tonic::Code::Cancelled);
    }
}

/// Counts the gRPC messages (5-byte prefix, then the payload) in a body.
#[derive(Default)]
struct Framing {
    /// Bytes of the current message's prefix seen so far.
    prefix: Vec<u8>,
    /// Payload bytes still to come of the current message.
    remaining: usize,
}

impl Framing {
    /// The messages that start in `data`.
    fn messages(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len());
                self.remaining -= take;
                data = &data[take..];
                continue;
            }
            let want = 5 - self.prefix.len();
            let take = want.min(data.len());
            self.prefix.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.prefix.len() == 5 {
                started += 1;
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = length as usize;
                self.prefix.clear();
            }
        }
        started
    }
}

/// A request or response body whose messages are counted.
struct Counted<B> {
    inner: B,
    framing: Framing,
    messages: Option<Arc<Counter>>,
    /// The response's call: completed by its trailers.
    call: Option<Call>,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(messages)) = (frame.data_ref(), &this.messages) {
                    messages.add(this.framing.messages(data));
                }
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), &mut this.call) {
                    call.complete(status_in(trailers).unwrap_or(tonic::Code::Ok));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = &mut this.call {
                    call.complete(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = &mut this.call {
                    call.complete(tonic::Code::Ok);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The layer: `.layer(GrpcMetricsLayer(metrics))` on a tonic server.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer(pub Option<Arc<GrpcMetrics>>);

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetered {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// A service behind [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetered<S> {
    inner: S,
    metrics: Option<Arc<GrpcMetrics>>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tonic::codegen::Service<http::Request<B>> for GrpcMetered<S>
where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = service_method(request.uri().path());
        let streaming = STREAMING.contains(&method.as_str());
        let Some(metrics) = self.metrics.clone() else {
            return Box::pin(self.inner.call(request.map(tonic::body::Body::new)));
        };
        let kind = if streaming {
            &metrics.stream
        } else {
            &metrics.unary
        };
        kind.received.with(&[&service, &method]).inc();
        let (sent, received) = if streaming {
            (
                Some(metrics.messages_sent.with(&[&service, &method])),
                Some(metrics.messages_received.with(&[&service, &method])),
            )
        } else {
            (None, None)
        };
        let request = request.map(|body| {
            tonic::body::Body::new(Counted {
                inner: body,
                framing: Framing::default(),
                messages: received,
                call: None,
            })
        });
        let mut call = Call {
            metrics: Arc::clone(&metrics),
            streaming,
            service,
            method,
            started: Instant::now(),
            done: false,
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // A status in the headers (trailers-only): the call is over.
            if let Some(code) = status_in(response.headers()) {
                call.complete(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(Counted {
                    inner: body,
                    framing: Framing::default(),
                    messages: sent,
                    call: Some(call),
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_frames() {
        let mut framing = Framing::default();
        // Two messages of 3 and 0 bytes, then one of 4 split across frames.
        assert_eq!(
            framing.messages(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0]),
            2
        );
        assert_eq!(framing.messages(&[0, 0, 0]), 0);
        assert_eq!(framing.messages(&[0, 4, 9, 9]), 1);
        assert_eq!(framing.messages(&[9, 9]), 0);
        assert_eq!(framing.messages(&[0, 0, 0, 0, 1, 7]), 1);
    }

    #[test]
    fn services_are_named_as_fabric_names_them() {
        assert_eq!(
            service_method("/protos.Endorser/ProcessProposal"),
            ("protos_Endorser".to_owned(), "ProcessProposal".to_owned())
        );
        assert_eq!(
            service_method("/orderer.AtomicBroadcast/Broadcast"),
            ("orderer_AtomicBroadcast".to_owned(), "Broadcast".to_owned())
        );
    }
}
