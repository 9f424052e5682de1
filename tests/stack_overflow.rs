//! A stack overflow inside a coroutine kills the process with a message that names it, on both backends:
//! never silent corruption, never a bare segmentation fault. Each case runs this test binary again as a child
//! process (selecting the `overflow_child` test through an environment variable) and checks how it died.
//!
//! Under Miri (no child processes, no native backend) this file is compiled out.
#![cfg(not(miri))]

#[path = "common/child.rs"]
mod child;

use child::{Ended, self_command};
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
        #[cfg(cothread_native)]
        "native-generator" => {
            let mut g = Builder::new()
                .backend(Backend::Native)
                .stack_size(256 << 10)
                .generator(|_: &cothread::Yielder<(), ()>, ()| bottomless(0))
                .expect("generator");
            let _ = g.resume(());
            unreachable!("the recursion cannot return");
        }
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

/// What the child prints when the overflow is reported: Rust's message for threads, and ours for native
/// coroutines on Unix ("a native coroutine has overflowed its stack").
const REPORT: &str = "has overflowed its stack";

fn run_child(which: &str) -> Ended {
    let mut cmd = self_command(&[
        "--exact",
        "overflow_child",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD, which);
    child::run(cmd, Some(REPORT))
}

/// The child reported a stack overflow and died of it, as this OS makes a process die of one.
fn assert_reported_overflow(out: &Ended) {
    let stderr = &out.stderr;
    assert!(
        stderr.contains(REPORT),
        "no overflow message; status {:?}, stderr:\n{stderr}",
        out.status
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // An abort after the report: SIGABRT is 6 on every Unix Rust supports; a bare SIGSEGV (11) would mean
        // nobody reported it.
        let signal = out.status.and_then(|s| s.signal());
        assert_eq!(
            signal,
            Some(6),
            "status {:?}, stderr:\n{stderr}",
            out.status
        );
    }
    #[cfg(windows)]
    {
        // Windows reports the overflow as an exception: std's handler prints the report and lets it go on,
        // and the process ends with STATUS_STACK_OVERFLOW. Wine 8 does not always get that far: for an
        // overflow on a thread's own stack its exception dispatch runs out of stack again and the process hangs
        // after the report (`child::run` kills it).
        const STATUS_STACK_OVERFLOW: u32 = 0xC000_00FD;
        let code = out.status.and_then(|s| s.code()).map(|c| c as u32);
        assert!(
            code == Some(STATUS_STACK_OVERFLOW) || (out.status.is_none() && under_wine()),
            "status {:?}, stderr:\n{stderr}",
            out.status
        );
    }
    #[cfg(not(any(unix, windows)))]
    assert!(
        !out.status.is_some_and(|s| s.success()),
        "the child survived: {stderr}"
    );
}

/// Whether this process runs under Wine: its ntdll exports `wine_get_version`, Windows' does not.
#[cfg(windows)]
fn under_wine() -> bool {
    use std::ffi::{c_char, c_void};
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleA(name: *const c_char) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }
    // SAFETY: both take NUL-terminated names and only look up a module already loaded in every process (ntdll)
    // and one of its exports; neither result is used beyond its null check.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr());
        !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr()).is_null()
    }
}

#[test]
fn thread_backend_overflow_is_reported() {
    assert_reported_overflow(&run_child("thread"));
}

/// A native stack's overflow (`which`: a coroutine's or a generator's) is reported, naming the native
/// coroutine on Unix.
#[cfg(cothread_native)]
fn assert_native_overflow_reported(which: &str) {
    let out = run_child(which);
    assert_reported_overflow(&out);
    // On Unix the report is our signal handler's. On Windows, corosensei's stacks tell the OS their bounds, so
    // the overflow is Windows' ordinary stack-overflow exception, and std's handler names the thread instead.
    #[cfg(unix)]
    assert!(
        out.stderr.contains("native coroutine"),
        "the report names the native coroutine:\n{}",
        out.stderr
    );
}

#[cfg(cothread_native)]
#[test]
fn native_backend_overflow_is_reported() {
    assert_native_overflow_reported("native");
}

#[cfg(cothread_native)]
#[test]
fn native_generator_overflow_is_reported() {
    assert_native_overflow_reported("native-generator");
}
