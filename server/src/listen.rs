//! How `tarn serve` takes connections: an accept loop that serves at most
//! [`ServerLimits::max_connections`] at once (when all are taken, the connection that has
//! waited longest on its client, for a request or for a request's body, is closed to make
//! room for the new one, so silent sockets cannot lock real clients out), closes connections that sit idle or are slow to send a
//! request's headers (the first request's counted from the accept), answers `408` when a body does not arrive in time,
//! disconnects clients that stop reading their answer, and on shutdown stops accepting and
//! lets the requests in flight finish.
//!
//! Each connection has a watcher (a timer in its task) over what the connection is doing:
//! no request in flight and nothing received since the last answer is *idle*; bytes
//! received but no complete request head yet is *reading headers*; a request handed to the
//! router is *in flight* until its answer's body has been sent (or dropped).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::limits::ServerLimits;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many connections the system may hold for the server before it accepts them (the
/// kernel caps it at `net.core.somaxconn`). The usual 128 made a burst of a thousand
/// clients see connections reset before the server ever saw them.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a [`LISTEN_BACKLOG`]-deep queue of connections to accept.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting, lets every connection finish the request it is serving, and returns.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let open = Arc::new(OpenConnections::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut at_limit = false;
    'accepting: loop {
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of file descriptors (or similar): give connections time to end
                        // instead of spinning on the error.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        // Every slot taken: the connection that has waited longest on its client (idle,
        // still sending a request's head or body) makes room. Only when the server is
        // working on a request on every connection does the newcomer wait, until one is done.
        let permit = loop {
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                break permit;
            }
            if !at_limit {
                tracing::warn!(
                    "serving the maximum of {max} connections (--max-connections): the one idle longest is closed for each new one"
                );
                at_limit = true;
            }
            let evicted = open.close_longest_waiting(EVICTION_GRACE);
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'accepting,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => break p,
                    Err(_) => break 'accepting,
                },
                _ = open.became_idle.notified(), if !evicted => {}
                // A connection may come of age for eviction without anything being notified.
                _ = tokio::time::sleep(EVICTION_GRACE / 4), if !evicted => {}
            }
        };
        if slots.available_permits() > max / 2 {
            at_limit = false;
        }
        let _ = stream.set_nodelay(true);
        let activity = open.add();
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            stop_rx.clone(),
            activity,
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Accept errors that concern one connection only (the next accept may well succeed).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// How often a connection's watcher looks at it: a quarter of the shortest timeout, between
/// 50 ms and 1 s.
fn check_interval(limits: &ServerLimits) -> Duration {
    (limits.idle_timeout.min(limits.header_read_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1))
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
    registered: Registered,
    _slot: OwnedSemaphorePermit,
) {
    let activity = registered.activity.clone();
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
        write_stall: limits.idle_timeout,
        stalled: None,
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            handle(
                request,
                router.clone(),
                activity.clone(),
                limits.body_read_timeout,
            )
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watcher below bounds reading headers; hyper's own timer is not used.
    builder.header_read_timeout(None);
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    let mut watch = tokio::time::interval(check_interval(&limits));
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                // Idle connections close now; one serving a request closes after its answer.
                connection.as_mut().graceful_shutdown();
            }
            _ = watch.tick() => {
                if let Some(why) = activity.expired(&limits) {
                    tracing::debug!("closing a connection: {why}");
                    return;
                }
            }
            _ = activity.evict.notified() => {
                tracing::debug!(
                    "closing a connection to make room (--max-connections): it waited longest for a request"
                );
                return;
            }
        }
    }
}

/// One request: the router's answer, or `408` if the body did not arrive in time. The
/// connection counts as busy until the answer's body is sent.
async fn handle(
    request: Request<Incoming>,
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
) -> Result<Response<Body>, Infallible> {
    let busy = activity.start();
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(body_timeout)),
            timed_out: timed_out.clone(),
            activity: activity.clone(),
        })
    });
    let response = tower::ServiceExt::oneshot(router, request)
        .await
        .unwrap_or_else(|never| match never {});
    let response = if timed_out.load(Ordering::Relaxed) {
        let mut response = ApiError::request_timeout(format!(
            "the request body did not arrive within {} (the server's --body-read-timeout): send it at once",
            seconds(body_timeout)
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    } else {
        response
    };
    Ok(response.map(|body| {
        Body::new(TrackedBody {
            inner: body,
            _busy: busy,
        })
    }))
}

/// `1.5 s`, `60 s`.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

// ---- what a connection is doing ----------------------------------------------------------

/// The connections being served, so that one can be closed to make room for a new one.
#[derive(Default)]
struct OpenConnections {
    by_id: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// Notified when a connection starts waiting on its client (it may now be closed to
    /// make room): its request is done, or its request's body stalls.
    became_idle: Arc<Notify>,
}

impl OpenConnections {
    /// A new connection, registered until the returned guard is dropped.
    fn add(self: &Arc<Self>) -> Registered {
        let activity = Arc::new(Activity::new(self.became_idle.clone()));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.by_id).insert(id, activity.clone());
        Registered {
            activity,
            id,
            open: self.clone(),
        }
    }

    /// Tells the connection that has waited longest on its client (idle since its last
    /// answer or since it connected, sending its request head, or sending a request's body)
    /// to close. False when the server is working on a request on every connection.
    /// Only connections that have waited at least `grace` are chosen: in a burst of real
    /// clients, a connection accepted a moment ago is still about to send its request, and
    /// closing it would drop that request; the newcomer waits for a slot instead.
    fn close_longest_waiting(&self, grace: Duration) -> bool {
        let all = lock(&self.by_id);
        // A connection may start a request between the choice and the mark: choose again.
        for _ in 0..4 {
            let Some(victim) = all
                .values()
                .filter_map(|a| a.waiting_since().map(|since| (since, a)))
                .filter(|(since, _)| since.elapsed() >= grace)
                .min_by_key(|(since, _)| *since)
                .map(|(_, a)| a)
            else {
                return false;
            };
            if victim.mark_closing() {
                victim.evict.notify_one();
                return true;
            }
        }
        false
    }
}

/// How long a connection must have waited on its client before it may be closed to make
/// room for a new one at `--max-connections` (see [`OpenConnections::close_longest_waiting`]).
const EVICTION_GRACE: Duration = Duration::from_secs(2);

/// A connection's entry in [`OpenConnections`], removed when the connection ends.
struct Registered {
    activity: Arc<Activity>,
    id: u64,
    open: Arc<OpenConnections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.open.by_id).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Activity {
    state: Mutex<ActivityState>,
    /// Notified to close the connection to make room for a new one.
    evict: Notify,
    /// [`OpenConnections::became_idle`].
    became_idle: Arc<Notify>,
}

struct ActivityState {
    /// Requests handed to the router whose answers are not sent yet.
    in_flight: usize,
    /// When the connection last had nothing to do (its last answer sent).
    idle_since: Instant,
    /// When the next request began, while none is in flight: its first byte, or for the
    /// first request, the moment the connection was accepted.
    head_started: Option<Instant>,
    /// While a request is in flight: since when its handler has been waiting for the
    /// client to send more of the body.
    body_waiting_since: Option<Instant>,
    /// Chosen to be closed to make room.
    closing: bool,
}

impl ActivityState {
    /// Since when the connection has been waiting on its client: for a request (idle, or
    /// sending its head), or for more of a request's body. `None` while the server is
    /// working on a request, and once the connection is closing.
    fn waiting_since(&self) -> Option<Instant> {
        if self.closing {
            None
        } else if self.in_flight > 0 {
            self.body_waiting_since
        } else {
            Some(self.head_started.unwrap_or(self.idle_since))
        }
    }
}

impl Activity {
    /// A connection just accepted: its first request's head is due within
    /// `--header-read-timeout` from now.
    fn new(became_idle: Arc<Notify>) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: now,
                head_started: Some(now),
                body_waiting_since: None,
                closing: false,
            }),
            evict: Notify::new(),
            became_idle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ActivityState> {
        lock(&self.state)
    }

    /// Bytes arrived.
    fn received(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
        }
    }

    /// A request's head is complete and goes to the router.
    fn start(self: &Arc<Self>) -> Busy {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
        Busy(self.clone())
    }

    /// [`ActivityState::waiting_since`].
    fn waiting_since(&self) -> Option<Instant> {
        self.lock().waiting_since()
    }

    /// Marks the connection to be closed to make room, if it is still waiting on its client.
    fn mark_closing(&self) -> bool {
        let mut s = self.lock();
        if s.waiting_since().is_none() {
            return false;
        }
        s.closing = true;
        true
    }

    /// The request's body is (`true`) or is not (`false`) waiting for the client.
    fn body_waiting(&self, waiting: bool) {
        let started = {
            let mut s = self.lock();
            if !waiting {
                s.body_waiting_since = None;
                false
            } else if s.body_waiting_since.is_none() {
                s.body_waiting_since = Some(Instant::now());
                true
            } else {
                false
            }
        };
        if started {
            // The connection may now be closed to make room.
            self.became_idle.notify_one();
        }
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ServerLimits) -> Option<String> {
        let s = self.lock();
        if s.in_flight > 0 {
            return None;
        }
        match s.head_started {
            Some(t) if t.elapsed() >= limits.header_read_timeout => Some(format!(
                "its request headers did not arrive within {} (--header-read-timeout)",
                seconds(limits.header_read_timeout)
            )),
            Some(_) => None,
            None if s.idle_since.elapsed() >= limits.idle_timeout => Some(format!(
                "idle for {} (--idle-timeout)",
                seconds(limits.idle_timeout)
            )),
            None => None,
        }
    }
}

/// A request in flight; dropped when its answer has been sent (or abandoned).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let idle = {
            let mut s = self.0.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            s.body_waiting_since = None;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.head_started = None;
            }
            s.in_flight == 0
        };
        if idle {
            self.0.became_idle.notify_one();
        }
    }
}

// ---- the socket ----------------------------------------------------------------------------

/// The client's socket, noting when bytes arrive, and failing a write the client has not
/// let through for `write_stall` (a client that stops reading its answer).
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_stall: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl TrackedIo {
    /// A write is pending: fail it once it has been pending for `write_stall`.
    fn poll_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.write_stall;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of its answer for {} (--idle-timeout)",
                    seconds(stall)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.poll_stall(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.written(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ---- bodies --------------------------------------------------------------------------------

/// A request body that fails (and flags the request) if it is not all in by its deadline,
/// and tells the connection's [`Activity`] while it waits for the client.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
    activity: Arc<Activity>,
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        self.activity.body_waiting(false);
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.activity.body_waiting(false);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.activity.body_waiting(false);
                    self.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err("the request body did not arrive in time".into())))
                }
                Poll::Pending => {
                    self.activity.body_waiting(true);
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// An answer's body that marks its request done when it is dropped (sent or abandoned).
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
