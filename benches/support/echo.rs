//! The echo benchmark: round trips per second through a TCP echo server with one task per connection,
//! cothread's `RunLoop` against the same server on tokio's current-thread runtime, driven by one client.
//!
//! The client is one thread on a mio poll of its own (neither side's runtime): each of `CONNS` connections
//! sends `MSG` bytes, waits until they all came back, and sends again. Both servers run on a thread of their
//! own, accept `CONNS` connections and end when the client closes them.
//!
//! Besides the rate, each run reports the CPU time the server's thread used per round trip (Linux): a figure
//! that a busy host disturbs far less than the rate, since time the server waits for the CPU is not in it. On
//! the native backend (and tokio) that thread does all of the server's work; on the thread backend each task
//! runs on a thread of its own, so the figure would leave most of the work out and is not given.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

/// Connections of one run.
pub const CONNS: usize = 64;
/// Bytes of one message.
pub const MSG: usize = 64;

/// A server's address and its thread, which returns the CPU time it used (see [`thread_cpu`]).
pub type Server = (SocketAddr, thread::JoinHandle<Option<Duration>>);

/// The CPU time the calling thread has used so far (Linux: `/proc/thread-self/schedstat`, in nanoseconds);
/// `None` elsewhere.
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The cothread server: accepts `CONNS` connections, one task each; returns once they have all closed.
pub fn cothread_server() -> Server {
    use cothread::net::{TcpListener, TcpStream};
    use cothread::{RunLoop, runloop};

    fn echo(mut conn: TcpStream) -> io::Result<()> {
        conn.set_nodelay(true)?;
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n])?;
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = thread::spawn(move || {
        let mut rl = RunLoop::new();
        rl.spawn(move || {
            for _ in 0..CONNS {
                let (conn, _) = listener.accept().expect("accept");
                runloop::spawn(move || echo(conn).expect("echo"));
            }
        });
        rl.run();
        // On the thread backend most of the work runs on the tasks' threads (see the module docs).
        thread_cpu().filter(|_| cfg!(cothread_native))
    });
    (addr, server)
}

/// The same server on tokio's current-thread runtime.
pub fn tokio_server() -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("local_addr");
    let server = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let mut tasks = Vec::new();
            for _ in 0..CONNS {
                let (mut conn, _) = listener.accept().await.expect("accept");
                tasks.push(tokio::spawn(async move {
                    conn.set_nodelay(true).expect("nodelay");
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = conn.read(&mut buf).await.expect("read");
                        if n == 0 {
                            return;
                        }
                        conn.write_all(&buf[..n]).await.expect("write");
                    }
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
        });
        thread_cpu()
    });
    (addr, server)
}

/// Drives `CONNS` connections to `addr` for `duration`; returns the round trips and the time they took.
pub fn client(addr: SocketAddr, duration: Duration) -> (u64, Duration) {
    let mut poll = mio::Poll::new().expect("poll");
    let mut events = mio::Events::with_capacity(CONNS);
    let msg = [7u8; MSG];
    let mut conns: Vec<(mio::net::TcpStream, usize)> = (0..CONNS)
        .map(|i| {
            let s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_nonblocking(true).expect("nonblocking");
            let mut s = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut s, mio::Token(i), mio::Interest::READABLE)
                .expect("register");
            (s, 0)
        })
        .collect();
    let send = |s: &mut mio::net::TcpStream| {
        let mut sent = 0;
        while sent < MSG {
            match s.write(&msg[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) => panic!("client write: {e}"),
            }
        }
    };
    let start = Instant::now();
    for (s, _) in &mut conns {
        send(s);
    }
    let mut rounds = 0u64;
    let mut outstanding = CONNS;
    let mut buf = [0u8; 4096];
    while outstanding > 0 {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("client poll");
        assert!(!events.is_empty(), "the echo server stopped answering");
        let sending = start.elapsed() < duration;
        for event in &events {
            let (s, got) = &mut conns[event.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("the server closed a connection"),
                    Ok(n) => *got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client read: {e}"),
                }
            }
            while *got >= MSG {
                *got -= MSG;
                rounds += 1;
                if sending {
                    send(s);
                } else {
                    outstanding -= 1;
                }
            }
        }
    }
    (rounds, start.elapsed())
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Round trips per second.
    pub rate: f64,
    /// CPU time of the server's thread per round trip, in nanoseconds (where [`thread_cpu`] reads it, and
    /// not for the thread backend: see the module docs).
    pub cpu_ns: Option<f64>,
}

/// One run against the server `serve` starts.
pub fn run(serve: fn() -> Server, duration: Duration) -> Run {
    let (addr, server) = serve();
    let (rounds, took) = client(addr, duration);
    let cpu = server.join().expect("server");
    Run {
        rate: rounds as f64 / took.as_secs_f64(),
        cpu_ns: cpu.map(|cpu| cpu.as_nanos() as f64 / rounds as f64),
    }
}

/// `pairs` runs of each server, alternating which goes first: (cothread, tokio).
pub fn interleaved(pairs: usize, duration: Duration) -> Vec<(Run, Run)> {
    (0..pairs)
        .map(|i| {
            if i % 2 == 0 {
                let c = run(cothread_server, duration);
                (c, run(tokio_server, duration))
            } else {
                let t = run(tokio_server, duration);
                (run(cothread_server, duration), t)
            }
        })
        .collect()
}
