//! A stack overflow inside a coroutine kills the process with a message that names it, on both backends:
//! never silent corruption, never a bare segmentation fault. Each case runs this test binary again as a child
//! process (selecting the `overflow_child` test through an environment variable) and checks how it died.
//!
//! Under Miri (no child processes, no native backend) this file is compiled out.
#![cfg(not(miri))]

use std::process::{Command, Output};

use cothread::{Backend, Builder};

/// Set in the child: which backend's coroutine overflows.
const CHILD: &str = "COTHREAD_OVERFLOW_CHILD";

/// Recurses until the stack runs out (every frame keeps a live 4 KiB array, so nothing turns it into a loop).
#[inline(never)]
fn bottomless(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth as u8; 4096]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0; // never: a 256 KiB stack ends long before
    }
    bottomless(depth + 1) + pad[100] as u64
}

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn overflow_child() {
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    let backend = match which.as_str() {
        "thread" => Backend::Thread,
        #[cfg(cothread_native)]
        "native" => Backend::Native,
        other => panic!("unknown backend {other}"),
    };
    let mut co = Builder::new()
        .backend(backend)
        .stack_size(256 << 10)
        .spawn(|| bottomless(0))
        .expect("coroutine");
    let _ = co.enter();
    unreachable!("the recursion cannot return");
}

fn run_child(which: &str) -> Output {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "overflow_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, which)
        .output()
        .expect("child process")
}

/// The child died of an abort (not a segmentation fault, not a clean exit) and said "has overflowed its stack".
fn assert_reported_overflow(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child survived: {stderr}");
    assert!(
        stderr.contains("has overflowed its stack"),
        "no overflow message; status {:?}, stderr:\n{stderr}",
        out.status
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGABRT is 6 on every Unix Rust supports; a bare SIGSEGV (11) would mean nobody reported it.
        assert_eq!(out.status.signal(), Some(6), "stderr:\n{stderr}");
    }
}

#[test]
fn thread_backend_overflow_is_reported() {
    assert_reported_overflow(&run_child("thread"));
}

#[cfg(cothread_native)]
#[test]
fn native_backend_overflow_is_reported() {
    let out = run_child("native");
    assert_reported_overflow(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("native coroutine"),
        "the report names the native coroutine:\n{stderr}"
    );
}
