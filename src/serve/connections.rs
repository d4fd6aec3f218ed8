//! The connections the server holds: at most `max_connections` at once, and none kept past
//! `idle_timeout` without a byte read or written (a client stalled in its headers, an idle
//! keep-alive, a client that does not read its answer). When a new client comes and every slot is
//! taken, the connection idle longest is closed to make room, so that clients that connect and
//! stall cannot keep a new one out (as nginx closes idle keep-alive connections when its
//! `worker_connections` run out). A body that stalls is answered 408 by the body timeout, which
//! is shorter.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// The open connections, for choosing which to close.
struct Registry {
    max_connections: usize,
    started: Instant,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    closed_idle: AtomicU64,
}

/// What the registry knows of one connection.
struct Activity {
    /// Milliseconds after the server started that it last read or wrote a byte.
    last_ms: AtomicU64,
    /// Set to close it; its next poll fails, and hyper drops it.
    closing: AtomicBool,
    /// The task polling it, woken to see `closing`.
    waker: Mutex<Option<Waker>>,
}

/// A TCP listener that holds its connections to the limits above (axum's [`axum::serve::Listener`]).
pub(crate) struct BoundedListener {
    listener: TcpListener,
    registry: Arc<Registry>,
    idle_timeout: Duration,
}

/// What `/stats` says of the connections.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ConnectionStats {
    pub open: usize,
    pub max_connections: usize,
    pub closed_to_make_room: u64,
}

/// A handle on the listener's counts, kept by the router.
#[derive(Clone)]
pub(crate) struct ConnectionsView(Arc<Registry>);

impl ConnectionsView {
    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: lock(&self.0.open).len(),
            max_connections: self.0.max_connections,
            closed_to_make_room: self.0.closed_idle.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the map whole, so a poisoned lock is still good.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ConnectionsView {
    /// No connection yet, room for `max_connections`.
    pub(crate) fn new(max_connections: usize) -> ConnectionsView {
        ConnectionsView(Arc::new(Registry {
            max_connections,
            started: Instant::now(),
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
        }))
    }
}

impl BoundedListener {
    pub(crate) fn new(listener: TcpListener, connections: &ConnectionsView, idle_timeout: Duration) -> Self {
        BoundedListener { listener, registry: Arc::clone(&connections.0), idle_timeout }
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a new connection, first closing the one idle longest when every slot is taken.
    fn admit(&self) -> (u64, Arc<Activity>) {
        let mut open = lock(&self.open);
        if open.len() >= self.max_connections {
            let idle_longest = open.iter().min_by_key(|(id, a)| (a.last_ms.load(Ordering::Relaxed), **id));
            if let Some((&id, _)) = idle_longest {
                let activity = open.remove(&id).expect("found above");
                activity.closing.store(true, Ordering::Release);
                if let Some(waker) = lock(&activity.waker).take() {
                    waker.wake();
                }
                self.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            last_ms: AtomicU64::new(self.now_ms()),
            closing: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        open.insert(id, Arc::clone(&activity));
        (id, activity)
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let (id, activity) = self.registry.admit();
        let idle = Box::pin(tokio::time::sleep(self.idle_timeout));
        let stream = BoundedStream {
            stream,
            registry: Arc::clone(&self.registry),
            id,
            activity,
            idle,
            idle_timeout: self.idle_timeout,
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// One connection: fails once it has been idle too long or is closed to make room.
pub(crate) struct BoundedStream {
    stream: TcpStream,
    registry: Arc<Registry>,
    id: u64,
    activity: Arc<Activity>,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
}

impl BoundedStream {
    /// After a poll of the socket: notes bytes moved, or, while it waits, whether it must end.
    fn after_poll(&mut self, cx: &mut Context<'_>, moved: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if self.activity.closing.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room")));
        }
        match moved {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.activity.last_ms.store(self.registry.now_ms(), Ordering::Relaxed);
                self.idle.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                *lock(&self.activity.waker) = Some(cx.waker().clone());
                match self.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle too long"))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let moved = Pin::new(&mut self.stream).poll_read(cx, buf).map_ok(|()| buf.filled().len() - before);
        let this = &mut *self;
        let moved = this.after_poll(cx, moved);
        // End of stream (0 bytes) passes through as it came.
        moved.map_ok(drop)
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let moved = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.after_poll(cx, moved)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let moved = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.after_poll(cx, moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Drop for BoundedStream {
    fn drop(&mut self) {
        lock(&self.registry.open).remove(&self.id);
    }
}
