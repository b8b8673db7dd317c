//! An accepted TCP connection as the server holds it: it counts as open while it lives (a
//! websocket's too, after the HTTP upgrade), and it closes with a linger so the peer reads
//! the server's last words.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

/// How long a closed connection keeps reading what the peer still sends. 5 s, as nginx's
/// `lingering_timeout`: enough for a client to finish writing a message the server refused.
pub const LINGER: Duration = Duration::from_secs(5);

/// What a connection is doing, as admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// Accepted, its first request's headers not yet read.
    Fresh,
    /// A request is being answered.
    Busy,
    /// Answered, waiting for the next request on a keep-alive connection.
    Idle,
    /// Upgraded to a websocket.
    Websocket,
    /// Closed by the server, lingering (see `Connection`).
    Closing,
    /// Chosen to make room for a new connection: it closes at once.
    Shed,
}

impl State {
    const ALL: [State; 6] = [
        State::Fresh,
        State::Busy,
        State::Idle,
        State::Websocket,
        State::Closing,
        State::Shed,
    ];

    fn from_u8(n: u8) -> State {
        State::ALL[usize::from(n)]
    }
}

/// One connection's state, shared by its task, its answers and the admission that may shed
/// it.
pub struct Tracker {
    state: AtomicU8,
    shed: Notify,
    reserve: bool,
}

impl Tracker {
    fn new(reserve: bool) -> Tracker {
        Tracker {
            state: AtomicU8::new(State::Fresh as u8),
            shed: Notify::new(),
            reserve,
        }
    }

    fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves from `from` to `to`; false when the connection was elsewhere.
    fn shift(&self, from: State, to: State) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A request's headers have been read.
    pub fn request_started(&self) {
        let _ = self.shift(State::Fresh, State::Busy) || self.shift(State::Idle, State::Busy);
    }

    /// The answer has been written whole: the connection waits for its next request.
    pub fn answered(&self) {
        self.shift(State::Busy, State::Idle);
    }

    /// The answer switched the connection to a websocket.
    pub fn upgraded(&self) {
        self.shift(State::Busy, State::Websocket);
    }

    fn closing(&self) {
        let _ = [State::Fresh, State::Busy, State::Idle, State::Websocket]
            .into_iter()
            .any(|from| self.shift(from, State::Closing));
    }

    /// Resolves when admission chose this connection to make room for a new one.
    pub async fn shed(&self) {
        self.shed.notified().await;
    }

    /// One of the `HEALTH_RESERVE` places: only `/healthz` and `/readyz` are answered.
    pub fn is_reserve(&self) -> bool {
        self.reserve
    }
}

/// Who gets a place among the open connections. `max` places, taken first come first
/// served; when they are all taken, a new connection takes the place of one that is not
/// being answered (see `DEFAULT_MAX_CONNECTIONS`), or else one of `reserve` places kept for
/// health checks; when those are taken too, it waits.
pub struct Admission {
    max: usize,
    reserve: usize,
    inner: Mutex<Places>,
    freed: Notify,
}

#[derive(Default)]
struct Places {
    next: u64,
    /// By age: ids grow in accept order.
    held: BTreeMap<u64, Arc<Tracker>>,
    reserved: usize,
}

impl Admission {
    pub fn new(max: usize, reserve: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max,
            reserve,
            inner: Mutex::new(Places::default()),
            freed: Notify::new(),
        })
    }

    /// A place for a new connection, waiting while none can be had.
    pub async fn admit(self: &Arc<Admission>, open: &watch::Sender<usize>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_admit(open) {
                return slot;
            }
            freed.await;
        }
    }

    /// A place for a new connection, shedding another if need be; `None` when every
    /// connection is busy and the reserve is taken.
    pub fn try_admit(self: &Arc<Admission>, open: &watch::Sender<usize>) -> Option<Slot> {
        let mut places = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let reserve = if places.held.len() < self.max {
            false
        } else if let Some(shed) = places.shed_one() {
            shed.shed.notify_one();
            false
        } else if places.reserved < self.reserve {
            true
        } else {
            return None;
        };
        let tracker = Arc::new(Tracker::new(reserve));
        let id = places.next;
        places.next += 1;
        if reserve {
            places.reserved += 1;
        } else {
            places.held.insert(id, tracker.clone());
        }
        drop(places);
        open.send_modify(|n| *n += 1);
        Some(Slot {
            admission: self.clone(),
            id,
            tracker,
            open: open.clone(),
        })
    }

    fn release(&self, id: u64, reserve: bool) {
        let mut places = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if reserve {
            places.reserved -= 1;
        } else {
            places.held.remove(&id);
        }
        drop(places);
        self.freed.notify_one();
    }
}

impl Places {
    /// Takes the place of the oldest connection that is closing, else of the oldest still
    /// waiting for its first request, else of the oldest idle one.
    fn shed_one(&mut self) -> Option<Arc<Tracker>> {
        // A connection may change state while this looks: the swap to `Shed` decides.
        for _ in 0..3 {
            let mut fresh = None;
            let mut idle = None;
            let mut closing = None;
            for (id, tracker) in &self.held {
                match tracker.state() {
                    State::Closing => {
                        closing = Some((*id, State::Closing));
                        break;
                    }
                    State::Fresh if fresh.is_none() => fresh = Some((*id, State::Fresh)),
                    State::Idle if idle.is_none() => idle = Some((*id, State::Idle)),
                    _ => {}
                }
            }
            let (id, state) = closing.or(fresh).or(idle)?;
            if self.held[&id].shift(state, State::Shed) {
                return self.held.remove(&id);
            }
        }
        None
    }
}

/// A place among the open connections, and one in the count of open connections the drain
/// waits on.
pub struct Slot {
    admission: Arc<Admission>,
    id: u64,
    tracker: Arc<Tracker>,
    open: watch::Sender<usize>,
}

impl Slot {
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.id, self.tracker.reserve);
        self.open.send_modify(|n| *n -= 1);
    }
}

/// The stream hyper and the websocket read and write. Dropping it does not close the socket
/// at once: closing with unread input makes the kernel answer with a reset, and a client
/// still uploading (a body over the limit, a 20 MiB websocket frame) then fails its write
/// and never reads the 413 or the 1009 close frame already sent. So the server shuts down
/// its side and reads, discarding, until the peer closes too, for at most `LINGER`, or
/// until its place is needed for a new connection. A shed connection closes at once.
pub struct Connection {
    stream: Option<TcpStream>,
    slot: Option<Slot>,
}

impl Connection {
    pub fn new(stream: TcpStream, slot: Slot) -> Connection {
        Connection {
            stream: Some(stream),
            slot: Some(slot),
        }
    }

    pub fn tracker(&self) -> Option<&Arc<Tracker>> {
        self.slot.as_ref().map(Slot::tracker)
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.stream {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let (Some(stream), Some(slot)) = (self.stream.take(), self.slot.take()) else {
            return;
        };
        slot.tracker.closing();
        // A reserved place is freed at once, for the next health check; the reserve answers
        // nothing that a client uploads to.
        if slot.tracker.state() == State::Shed || slot.tracker.reserve {
            return;
        }
        // Without a runtime (the process is exiting) the socket simply closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, slot));
        }
    }
}

async fn linger(mut stream: TcpStream, slot: Slot) {
    let _ = stream.shutdown().await;
    let mut scratch = vec![0; 16 * 1024];
    let drained = async { while let Ok(1..) = stream.read(&mut scratch).await {} };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, drained) => {}
        () = slot.tracker.shed() => {}
    }
    drop(slot);
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_shutdown(cx)
    }
}

/// An answer's body that marks its connection idle once hyper has written it and drops it.
pub struct Answered {
    body: axum::body::Body,
    tracker: Arc<Tracker>,
}

impl Answered {
    pub fn new(body: axum::body::Body, tracker: Arc<Tracker>) -> Answered {
        Answered { body, tracker }
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.tracker.answered();
    }
}

impl http_body::Body for Answered {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
