//! An accepted TCP connection as the server holds it: it counts as open while it lives (a
//! websocket's too, after the HTTP upgrade), and it closes with a linger so the peer reads
//! the server's last words.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

/// How long a closed connection keeps reading what the peer still sends. 5 s, as nginx's
/// `lingering_timeout`: enough for a client to finish writing a message the server refused.
pub const LINGER: Duration = Duration::from_secs(5);

/// A place among the open connections: a `MAX_CONNECTIONS` permit, and one in the count of
/// open connections the drain waits on.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    open: watch::Sender<usize>,
}

impl Slot {
    pub fn new(permit: OwnedSemaphorePermit, open: watch::Sender<usize>) -> Slot {
        open.send_modify(|n| *n += 1);
        Slot {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n -= 1);
    }
}

/// The stream hyper and the websocket read and write. Dropping it does not close the socket
/// at once: closing with unread input makes the kernel answer with a reset, and a client
/// still uploading (a body over the limit, a 20 MiB websocket frame) then fails its write
/// and never reads the 413 or the 1009 close frame already sent. So the server shuts down
/// its side and reads, discarding, until the peer closes too, for at most `LINGER`.
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
    let _ = tokio::time::timeout(LINGER, drained).await;
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
