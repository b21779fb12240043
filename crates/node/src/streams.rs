//! Long-lived gRPC streams answered in request order: the gateway's
//! Broadcast streams to the orderers, and a follower's forwarding stream to
//! its leader.
//!
//! - [`OrderedStreams`] (client side) keeps one stream per endpoint, shared
//!   by every caller: a request is one message on an open stream rather than
//!   a stream (or unary call) of its own, which saves the HTTP/2 stream
//!   set-up and its frames on both sides. The server answers a stream's
//!   messages in the order they were sent, so each stream keeps its waiting
//!   callers in a queue, in sending order. A stream that fails or ends fails
//!   every caller still waiting on it and is replaced by a fresh one at the
//!   next request.
//! - [`answer_in_order`] (server side) handles each message of a stream in a
//!   task of its own, many at once, and sends the answers in request order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::tls::Tls;

/// Why a request on a shared stream got no answer.
#[derive(Debug)]
pub enum CallError {
    /// Nothing of the request was handled: it was never sent, or its stream
    /// never opened. Sending it again cannot make it count twice.
    NotHandled(Status),
    /// The stream broke after the request was sent: it may or may not have
    /// been handled.
    Unanswered(Status),
}

impl CallError {
    pub fn status(&self) -> &Status {
        match self {
            CallError::NotHandled(status) | CallError::Unanswered(status) => status,
        }
    }
}

const STREAM_CLOSED: &str = "the stream closed before an answer";

/// Opens a stream on a connection: `requests` are its messages.
pub type Open<Req, Resp> = Arc<
    dyn Fn(
            Channel,
            UnboundedReceiverStream<Req>,
        ) -> Pin<Box<dyn Future<Output = Result<Streaming<Resp>, Status>> + Send>>
        + Send
        + Sync,
>;

/// What a caller waits for: the server's answer, or why none will come.
type Answer<Resp> = oneshot::Sender<Result<Resp, CallError>>;

/// One open stream: where requests go, and who waits for the answers.
struct Lane<Req, Resp> {
    /// `None` once the stream has failed or ended.
    sender: Option<mpsc::UnboundedSender<Req>>,
    waiting: VecDeque<Answer<Resp>>,
}

impl<Req, Resp> Lane<Req, Resp> {
    /// Fails every caller still waiting and closes the lane; `opened`:
    /// whether the stream had opened (so its requests may have been handled).
    fn fail(&mut self, status: &Status, opened: bool) {
        self.sender = None;
        for answer in self.waiting.drain(..) {
            let status = status.clone();
            let _ = answer.send(Err(if opened {
                CallError::Unanswered(status)
            } else {
                CallError::NotHandled(status)
            }));
        }
    }

    fn is_open(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }
}

type SharedLane<Req, Resp> = Arc<Mutex<Lane<Req, Resp>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// One shared stream per endpoint, opened on first use.
pub struct OrderedStreams<Req, Resp> {
    tls: Tls,
    open: Open<Req, Resp>,
    lanes: Mutex<HashMap<String, SharedLane<Req, Resp>>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> OrderedStreams<Req, Resp> {
    pub fn new(tls: Tls, open: Open<Req, Resp>) -> Self {
        OrderedStreams {
            tls,
            open,
            lanes: Mutex::default(),
        }
    }

    /// Sends `request` on the stream to `endpoint` and waits for its answer.
    pub async fn call(&self, endpoint: &str, request: Req) -> Result<Resp, CallError> {
        let (answer, answered) = oneshot::channel();
        if !self
            .send(endpoint, request, answer)
            .map_err(CallError::NotHandled)?
        {
            return Err(CallError::NotHandled(Status::unavailable(STREAM_CLOSED)));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(CallError::Unanswered(Status::unavailable(STREAM_CLOSED))))
    }

    /// Sends `request` on the lane to `endpoint` and queues `answer` for its
    /// answer; false if no lane took it.
    fn send(&self, endpoint: &str, request: Req, answer: Answer<Resp>) -> Result<bool, Status> {
        let mut request = request;
        // A lane that failed since it was looked up sent nothing: one retry
        // on a fresh lane.
        for _ in 0..2 {
            let lane = self.lane(endpoint)?;
            let mut lane = lock(&lane);
            let Some(sender) = &lane.sender else {
                continue;
            };
            // Queued and sent under one lock: answers match in sending order.
            match sender.send(request) {
                Ok(()) => {
                    lane.waiting.push_back(answer);
                    return Ok(true);
                }
                Err(mpsc::error::SendError(unsent)) => request = unsent,
            }
        }
        Ok(false)
    }

    /// The open lane to `endpoint`, opening one if there is none or the last
    /// one failed.
    fn lane(&self, endpoint: &str) -> Result<SharedLane<Req, Resp>, Status> {
        let mut lanes = lock(&self.lanes);
        if let Some(lane) = lanes.get(endpoint)
            && lock(lane).is_open()
        {
            return Ok(Arc::clone(lane));
        }
        let connection = self.tls.channel(endpoint).map_err(Status::unavailable)?;
        let (sender, requests) = mpsc::unbounded_channel();
        let lane = Arc::new(Mutex::new(Lane {
            sender: Some(sender),
            waiting: VecDeque::new(),
        }));
        lanes.insert(endpoint.to_owned(), Arc::clone(&lane));
        let answers = (self.open)(connection, UnboundedReceiverStream::new(requests));
        tokio::spawn(hand_out_answers(answers, Arc::clone(&lane)));
        Ok(lane)
    }
}

/// Waits for the stream to open, then hands each answer to the oldest
/// waiting caller until the stream fails or ends.
async fn hand_out_answers<Req, Resp>(
    answers: impl Future<Output = Result<Streaming<Resp>, Status>>,
    lane: SharedLane<Req, Resp>,
) {
    let mut answers = match answers.await {
        Ok(answers) => answers,
        Err(status) => return lock(&lane).fail(&status, false),
    };
    loop {
        match answers.message().await {
            Ok(Some(response)) => {
                let mut lane = lock(&lane);
                match lane.waiting.pop_front() {
                    Some(answer) => {
                        let _ = answer.send(Ok(response));
                    }
                    None => {
                        return lane.fail(
                            &Status::internal("the server answered a request it was not sent"),
                            true,
                        );
                    }
                }
            }
            Ok(None) => return lock(&lane).fail(&Status::unavailable(STREAM_CLOSED), true),
            Err(status) => return lock(&lane).fail(&status, true),
        }
    }
}

/// How many messages of one stream are handled at once.
const IN_FLIGHT_PER_STREAM: usize = 1000;

/// Handles each message of `incoming` with `handle` in a task of its own, up
/// to 1,000 at once, and answers in request order. A message that cannot be
/// read (over the gRPC bound, cut off) ends the answers with its status once
/// the answers before it are out; a handler that panics is answered with
/// `panicked(reason)`.
pub fn answer_in_order<Req, Resp, Fut>(
    mut incoming: Streaming<Req>,
    handle: impl Fn(Req) -> Fut + Send + 'static,
    panicked: impl Fn(String) -> Resp + Send + 'static,
) -> ReceiverStream<Result<Resp, Status>>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let (pending_tx, mut pending_rx) =
        mpsc::channel::<Result<tokio::task::JoinHandle<Resp>, Status>>(IN_FLIGHT_PER_STREAM);
    let (out_tx, out_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let request = match incoming.message().await {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(status) => {
                    let _ = pending_tx.send(Err(status)).await;
                    break;
                }
            };
            if pending_tx
                .send(Ok(tokio::spawn(handle(request))))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(pending) = pending_rx.recv().await {
            let task = match pending {
                Ok(task) => task,
                Err(status) => {
                    let _ = out_tx.send(Err(status)).await;
                    break;
                }
            };
            let response = task.await.unwrap_or_else(|e| panicked(e.to_string()));
            if out_tx.send(Ok(response)).await.is_err() {
                break;
            }
        }
    });
    ReceiverStream::new(out_rx)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response};
    use weft_protos::common::Envelope;
    use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
    use weft_protos::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
    use weft_protos::orderer::{BroadcastResponse, DeliverResponse};

    use super::*;
    use crate::tls::TlsFiles;

    type Answers<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

    /// Answers each envelope with its payload as `info`, after as many
    /// milliseconds as its first signature byte says; an envelope whose
    /// payload is `break` ends the stream with an error instead. With
    /// `serves: false`, it answers Broadcast UNIMPLEMENTED, as a node that
    /// does not know it.
    struct Echo {
        serves: bool,
    }

    #[tonic::async_trait]
    impl AtomicBroadcast for Echo {
        type BroadcastStream = Answers<BroadcastResponse>;
        type DeliverStream = Answers<DeliverResponse>;

        async fn broadcast(
            &self,
            request: Request<Streaming<Envelope>>,
        ) -> Result<Response<Self::BroadcastStream>, Status> {
            if !self.serves {
                return Err(Status::unimplemented("not served here"));
            }
            let answers = answer_in_order(
                request.into_inner(),
                |envelope: Envelope| async move {
                    let delay = envelope.signature.first().copied().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(delay.into())).await;
                    if envelope.payload == b"break" {
                        return None;
                    }
                    Some(BroadcastResponse {
                        status: 200,
                        info: String::from_utf8_lossy(&envelope.payload).into_owned(),
                    })
                },
                |_| None,
            )
            .map(|answer| answer.and_then(|a| a.ok_or_else(|| Status::aborted("broken"))));
            Ok(Response::new(Box::pin(answers)))
        }

        async fn deliver(
            &self,
            _: Request<Streaming<Envelope>>,
        ) -> Result<Response<Self::DeliverStream>, Status> {
            Err(Status::unimplemented("deliver"))
        }
    }

    /// The node TLS of a generated orderer, dialing `orderer.example.com:1`
    /// at `dial`.
    fn tls(network: &weft_testkit::TestNetwork, dial: String) -> Tls {
        let dir = network.orderer_dir(0).join("tls");
        Tls::load(&TlsFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            root_cas: vec![dir.join("ca.crt")],
        })
        .expect("tls")
        .with_overrides([(ENDPOINT.to_owned(), dial)].into())
    }

    const ENDPOINT: &str = "orderer.example.com:1";

    async fn serve(tls: &Tls, service: impl AtomicBroadcast) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tonic::transport::Server::builder()
            .tls_config(tls.server_config())
            .expect("server tls")
            .add_service(AtomicBroadcastServer::new(service));
        tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
        address
    }

    fn streams(tls: Tls) -> Arc<OrderedStreams<Envelope, BroadcastResponse>> {
        Arc::new(OrderedStreams::new(
            tls,
            Arc::new(|connection, envelopes| {
                Box::pin(async move {
                    AtomicBroadcastClient::new(connection)
                        .broadcast(envelopes)
                        .await
                        .map(Response::into_inner)
                })
            }),
        ))
    }

    fn envelope(payload: &str, delay_ms: u8) -> Envelope {
        Envelope {
            payload: payload.as_bytes().to_vec(),
            signature: vec![delay_ms],
        }
    }

    #[tokio::test]
    async fn concurrent_callers_each_get_their_own_answer() {
        let network = weft_testkit::TestNetwork::generate();
        let address = serve(&tls(&network, "127.0.0.1:1".into()), Echo { serves: true }).await;
        let streams = streams(tls(&network, address));
        // Later requests finish first on the server; answers still match.
        let calls: Vec<_> = (0..200u8)
            .map(|i| {
                let streams = Arc::clone(&streams);
                tokio::spawn(async move {
                    let answer = streams
                        .call(ENDPOINT, envelope(&format!("tx{i}"), 20 - i % 20))
                        .await;
                    (i, answer)
                })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.expect("task");
            assert_eq!(answer.expect("answered").info, format!("tx{i}"));
        }
        assert_eq!(lock(&streams.lanes).len(), 1, "one stream per endpoint");
    }

    #[tokio::test]
    async fn a_broken_stream_fails_its_waiting_callers_and_the_next_call_opens_a_new_one() {
        let network = weft_testkit::TestNetwork::generate();
        let address = serve(&tls(&network, "127.0.0.1:1".into()), Echo { serves: true }).await;
        let streams = streams(tls(&network, address));
        let broken = {
            let streams = Arc::clone(&streams);
            tokio::spawn(async move { streams.call(ENDPOINT, envelope("break", 100)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let behind = streams.call(ENDPOINT, envelope("behind", 0)).await;
        // The stream broke after both were sent: neither is known unhandled.
        let broken = broken.await.expect("task");
        assert!(
            matches!(&broken, Err(CallError::Unanswered(s)) if s.message() == "broken"),
            "{broken:?}"
        );
        assert!(
            matches!(behind, Err(CallError::Unanswered(_))),
            "{behind:?}"
        );
        let next = streams.call(ENDPOINT, envelope("next", 0)).await;
        assert_eq!(next.expect("answered on a fresh stream").info, "next");
    }

    #[tokio::test]
    async fn a_stream_the_server_does_not_serve_is_not_handled_with_its_code() {
        // What a follower's fallback to unary Submit relies on.
        let network = weft_testkit::TestNetwork::generate();
        let address = serve(&tls(&network, "127.0.0.1:1".into()), Echo { serves: false }).await;
        let streams = streams(tls(&network, address));
        for _ in 0..2 {
            let answer = streams.call(ENDPOINT, envelope("tx", 0)).await;
            assert!(
                matches!(&answer, Err(CallError::NotHandled(s)) if s.code() == tonic::Code::Unimplemented),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_as_not_handled() {
        let network = weft_testkit::TestNetwork::generate();
        // A port that was bound and released: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .to_string();
        let streams = streams(tls(&network, closed));
        let answer = streams.call(ENDPOINT, envelope("tx", 0)).await;
        assert!(
            matches!(&answer, Err(CallError::NotHandled(s)) if s.code() == tonic::Code::Unavailable),
            "{answer:?}"
        );
    }
}
