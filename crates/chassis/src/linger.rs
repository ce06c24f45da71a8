//! Lingering close: a client connection that the gateway ends is half-closed first, and what the
//! client still sends is read and thrown away for a bounded time and size before the socket
//! closes.
//!
//! Why: when the gateway answers before reading a request's body (413 for a declared length
//! over the limit, 401, 403, 429, 503), hyper stops reading and ends the connection. Closing a
//! socket whose receive buffer still holds unread bytes makes the kernel send a reset instead of
//! a FIN, and a reset discards whatever the client had not read yet — the answer included. A
//! client that writes its whole body before it reads (Python's urllib and requests, Java's
//! HttpURLConnection, many SDKs) then sees a broken pipe or "connection reset" instead of the
//! 413. nginx (`lingering_close`) and HAProxy do what this does: shut down the sending side, so
//! the answer and a FIN reach the client, then drain until the client closes or a bound passes.
//!
//! hyper calls `poll_shutdown` on its IO exactly once, when it ends a connection, so the
//! lingering lives there and costs nothing while requests flow. Every service's server
//! ([`crate::serve`]) and the gateway's client listener use it.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long and how much a closing connection may still be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// Longest time spent draining after the answer was sent.
    pub time: Duration,
    /// Most bytes read and discarded.
    pub bytes: u64,
}

impl Linger {
    /// nginx's bound on time (its `lingering_time` is 30 s, with 5 s between reads), and enough
    /// bytes for any body a shop's client sends.
    pub const DEFAULT: Self = Self {
        time: Duration::from_secs(5),
        bytes: 16 * 1024 * 1024,
    };
}

/// A listener whose connections linger when they close, for `axum::serve`.
#[derive(Debug)]
pub struct LingeringListener {
    listener: tokio::net::TcpListener,
    linger: Linger,
}

impl LingeringListener {
    /// Wraps `listener`.
    pub fn new(listener: tokio::net::TcpListener, linger: Linger) -> Self {
        Self { listener, linger }
    }
}

impl axum::serve::Listener for LingeringListener {
    type Io = Lingering<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        (Lingering::new(stream, self.linger), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

pin_project! {
    /// An IO (a client's TCP stream) that lingers when it is shut down.
    #[derive(Debug)]
    pub struct Lingering<T> {
        #[pin]
        io: T,
        linger: Linger,
        state: State,
    }
}

#[derive(Debug)]
enum State {
    /// Serving requests.
    Open,
    /// Sending side shut down; draining what arrives until EOF, a bound, or an error.
    Draining {
        deadline: Pin<Box<Sleep>>,
        read: u64,
    },
    /// Done: nothing more is read.
    Closed,
}

impl<T> Lingering<T> {
    /// Wraps `io`.
    pub fn new(io: T, linger: Linger) -> Self {
        Self {
            io,
            linger,
            state: State::Open,
        }
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead> AsyncRead for Lingering<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncWrite for Lingering<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Open => {
                    // The answer is flushed by now; the FIN follows it.
                    ready!(this.io.as_mut().poll_shutdown(cx))?;
                    *this.state = State::Draining {
                        deadline: Box::pin(tokio::time::sleep(this.linger.time)),
                        read: 0,
                    };
                }
                State::Draining { deadline, read } => {
                    let mut scratch = [MaybeUninit::<u8>::uninit(); 8192];
                    let mut buf = ReadBuf::uninit(&mut scratch);
                    match this.io.as_mut().poll_read(cx, &mut buf) {
                        // EOF: the client has read the answer and closed; a clean close.
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            *this.state = State::Closed;
                        }
                        Poll::Ready(Ok(())) => {
                            *read += buf.filled().len() as u64;
                            if *read > this.linger.bytes {
                                *this.state = State::Closed;
                            }
                        }
                        Poll::Ready(Err(_)) => *this.state = State::Closed,
                        Poll::Pending => {
                            ready!(deadline.as_mut().poll(cx));
                            *this.state = State::Closed;
                        }
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LINGER: Linger = Linger {
        time: Duration::from_secs(5),
        bytes: 1 << 20,
    };

    #[tokio::test]
    async fn shutdown_sends_the_answer_then_drains_until_the_client_closes() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server, LINGER);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        // The client writes far more than the pipe holds before it reads anything.
        let writer = tokio::spawn(async move {
            let body = vec![b'x'; 64 * 1024];
            client_write.write_all(&body).await.unwrap();
            client_write.shutdown().await.unwrap();
        });
        server.write_all(b"HTTP/1.1 413\r\n\r\n").await.unwrap();
        server.shutdown().await.unwrap();
        writer.await.unwrap();
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 413\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_closes_is_let_go_after_the_time_bound() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server, LINGER);
        let started = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        assert_eq!(started.elapsed(), LINGER.time);
    }

    #[tokio::test]
    async fn a_client_that_keeps_sending_is_let_go_after_the_size_bound() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut server = Lingering::new(
            server,
            Linger {
                time: Duration::from_secs(3600),
                bytes: 100 * 1024,
            },
        );
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 16 * 1024];
            // Stops when the server side goes away.
            while client.write_all(&chunk).await.is_ok() {}
        });
        tokio::time::timeout(Duration::from_secs(10), server.shutdown())
            .await
            .expect("the size bound ends the drain")
            .unwrap();
        drop(server);
        writer.await.unwrap();
    }
}
