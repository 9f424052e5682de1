//! A TCP echo server: one task per connection, written as straight-line code. Runs on the thread backend, or
//! on the native one with `--features native`.
//!
//! `cargo run --example echo -- 127.0.0.1:7878` serves until killed (try `nc 127.0.0.1 7878`);
//! `cargo run --example echo -- --demo` serves four clients of its own and exits.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use cothread::net::{TcpListener, TcpStream};
use cothread::{RunLoop, runloop};

/// Echoes what the peer sends until it stops sending.
fn echo(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf)?; // yields to the loop until data comes
        if n == 0 {
            return conn.shutdown(Shutdown::Write);
        }
        conn.write_all(&buf[..n])?; // yields while the peer's window is full
    }
}

/// Accepts `limit` connections (or forever), one task each.
fn serve(listener: TcpListener, limit: Option<usize>) {
    let mut accepted = 0;
    while limit.is_none_or(|limit| accepted < limit) {
        match listener.accept() {
            Ok((conn, peer)) => {
                accepted += 1;
                runloop::spawn(move || {
                    if let Err(e) = echo(conn) {
                        eprintln!("{peer}: {e}");
                    }
                });
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1);
    let demo = arg.as_deref() == Some("--demo");
    let addr = match arg {
        Some(addr) if !demo => addr,
        _ => "127.0.0.1:0".to_string(),
    };
    let listener = TcpListener::bind(&addr)?;
    let local = listener.local_addr()?;
    println!("echo server on {local}");
    let mut rl = RunLoop::new();
    if !demo {
        rl.spawn(move || serve(listener, None));
        rl.run();
        return Ok(());
    }
    const CLIENTS: usize = 4;
    rl.spawn(move || serve(listener, Some(CLIENTS)));
    // The clients are tasks of the same loop.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            rl.spawn(move || -> io::Result<String> {
                let mut s = TcpStream::connect(local)?;
                let msg = format!("hello from client {i}");
                s.write_all(msg.as_bytes())?;
                s.shutdown(Shutdown::Write)?;
                let mut back = String::new();
                s.read_to_string(&mut back)?;
                Ok(back)
            })
        })
        .collect();
    rl.run();
    for (i, c) in clients.iter().enumerate() {
        let back = c.take().expect("the client finished")?;
        assert_eq!(back, format!("hello from client {i}"));
        println!("client {i} got back {back:?}");
    }
    Ok(())
}
