//! Sockets that yield: [`TcpListener`], [`TcpStream`] and [`UdpSocket`] with std's shapes (QEMU's
//! `QIOChannelSocket` with `qio_channel_yield`).
//!
//! Inside a coroutine spawned on a [`RunLoop`](crate::RunLoop), an operation that would block registers the
//! socket with the task's loop and yields until the loop's poll reports it ready (`aio_set_fd_handler`); the
//! other tasks run meanwhile. Outside coroutines, operations block the calling thread, like std's. In a
//! coroutine that is not a task, an operation that would block panics, like every primitive that has to wait.
//! Errors are `io::Error`s: a refused connect, a reset or closed peer, a bind to a taken port.
//!
//! A socket is used by one loop at a time: it registers with the loop of the task that waits on it, and moves
//! when a task of another loop waits on it. Outside coroutines the socket leaves its loop while the thread
//! waits, and one thread at a time waits on a socket (another thread's operation on the same socket waits
//! until that wait ends).
//!
//! ```
//! use std::io::{Read, Write};
//! use cothread::net::{TcpListener, TcpStream};
//! use cothread::{runloop, RunLoop};
//!
//! # #[cfg(miri)] fn main() {} // Miri has no sockets
//! # #[cfg(not(miri))] fn main() -> std::io::Result<()> {
//! let mut rl = RunLoop::new();
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! rl.spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _) = listener.accept()?; // yields until a client connects
//!     runloop::spawn(move || {
//!         let mut buf = [0; 5];
//!         conn.read_exact(&mut buf)?;
//!         conn.write_all(&buf)
//!     });
//!     Ok(())
//! });
//! let client = rl.spawn(move || -> std::io::Result<Vec<u8>> {
//!     let mut stream = TcpStream::connect(addr)?;
//!     stream.write_all(b"hello")?;
//!     let mut back = Vec::new();
//!     stream.read_to_end(&mut back)?;
//!     Ok(back)
//! });
//! rl.run();
//! assert_eq!(client.take().unwrap()?, b"hello");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};

use crate::coroutine::in_coroutine;
use crate::runloop::current_task;
use crate::runloop::readiness::{Direction, Source};

/// Tries `op` on each address that `addr` resolves to, returning the first success or the last error.
fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut op: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match op(addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// A TCP socket server, listening for connections (std's `TcpListener`, yielding in tasks).
pub struct TcpListener {
    source: Source<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener to `addr` (port 0 picks a free port; see [`local_addr`](TcpListener::local_addr)).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let std = each_addr(addr, std::net::TcpListener::bind)?;
        TcpListener::from_std(std)
    }

    /// Wraps a listener made by std (it is switched to non-blocking mode).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            source: Source::new(mio::net::TcpListener::from_std(listener)),
        })
    }

    /// Accepts a connection: yields (in a task) or blocks (outside coroutines) until a client connects.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self
            .source
            .run("TcpListener::accept()", Direction::Read, |l| l.accept())?;
        Ok((TcpStream::from_mio(stream), addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.with(|l| l.local_addr())
    }

    /// An iterator over incoming connections ([`accept`](TcpListener::accept) forever).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(stream, _)| stream))
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A TCP connection (std's `TcpStream`, yielding in tasks). `Read` and `Write` are implemented for
/// `TcpStream` and `&TcpStream`, so two tasks can read and write one connection.
pub struct TcpStream {
    source: Source<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> TcpStream {
        TcpStream {
            source: Source::new(stream),
        }
    }

    /// Connects to `addr`: in a task, yields until the connection is made or refused; outside coroutines,
    /// blocks like std.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, TcpStream::connect_one)
    }

    fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        if current_task().is_none() && !in_coroutine() {
            return TcpStream::from_std(std::net::TcpStream::connect(addr)?);
        }
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?);
        // Connected once writable; a refused connect shows as the socket's error.
        stream
            .source
            .run("TcpStream::connect()", Direction::Write, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })?;
        Ok(stream)
    }

    /// Wraps a connection made by std (it is switched to non-blocking mode).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(stream)))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.with(|s| s.peer_addr())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.with(|s| s.local_addr())
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.with(|s| s.shutdown(how))
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.source.with(|s| s.set_nodelay(nodelay))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.source.with(|s| s.nodelay())
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.source.with(|s| s.set_ttl(ttl))
    }

    /// Reads into `buf` without removing the data from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .run("TcpStream::peek()", Direction::Read, |s| s.peek(buf))
    }

    /// Takes the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.source.with(|s| s.take_error())
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.source.run_noting_empty(
            "TcpStream::read()",
            Direction::Read,
            |mut s| s.read(buf),
            // Not on Windows, where mio emulates readiness and a short read proves nothing.
            |&n| !cfg!(windows) && 0 < n && n < len,
        )
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .run("TcpStream::write()", Direction::Write, |mut s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A UDP socket (std's `UdpSocket`, yielding in tasks).
pub struct UdpSocket {
    source: Source<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0 picks a free port).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let std = each_addr(addr, std::net::UdpSocket::bind)?;
        UdpSocket::from_std(std)
    }

    /// Wraps a socket made by std (it is switched to non-blocking mode).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            source: Source::new(mio::net::UdpSocket::from_std(socket)),
        })
    }

    /// Sends `buf` to `addr`; returns the number of bytes sent.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        each_addr(addr, |addr| {
            self.source
                .run("UdpSocket::send_to()", Direction::Write, |s| {
                    s.send_to(buf, addr)
                })
        })
    }

    /// Receives one datagram into `buf`; returns its size and where it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .run("UdpSocket::recv_from()", Direction::Read, |s| {
                s.recv_from(buf)
            })
    }

    /// Sets the default destination of [`send`](UdpSocket::send) and the only source of
    /// [`recv`](UdpSocket::recv).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| self.source.with(|s| s.connect(addr)))
    }

    /// Sends `buf` to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .run("UdpSocket::send()", Direction::Write, |s| s.send(buf))
    }

    /// Receives one datagram from the connected address.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .run("UdpSocket::recv()", Direction::Read, |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.with(|s| s.local_addr())
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.with(|s| s.peer_addr())
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.source.with(|s| s.set_broadcast(on))
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}
