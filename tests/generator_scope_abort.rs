//! A scope that cannot unwind its suspended native generator (it was resumed on another thread, so its stack
//! only runs there) aborts the process with a message, rather than return while the body still holds its
//! borrows. The case runs this test binary again as a child process (selected by an environment variable).
//!
//! Native only (the thread backend unwinds from any thread); compiled out under Miri (no child processes).
#![cfg(all(cothread_native, not(miri)))]

#[path = "common/child.rs"]
mod child;

use cothread::{Backend, Builder, GeneratorResult, Yielder};

/// Set in the child.
const CHILD: &str = "COTHREAD_SCOPE_ABORT_CHILD";

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn scope_abort_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut borrowed = 0u32;
    let _ = Builder::new().backend(Backend::Native).scoped_generator(
        |y: &Yielder<(), ()>, ()| {
            borrowed += 1;
            y.suspend(());
            borrowed += 1;
        },
        |g| {
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(g.resume(()), GeneratorResult::Yield(())));
            });
        },
    );
    eprintln!("child: the scope returned");
}

#[test]
fn a_scope_that_cannot_unwind_its_generator_aborts() {
    let mut cmd = child::self_command(&[
        "--exact",
        "scope_abort_child",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD, "1");
    let out = child::run(cmd, None);
    let stderr = &out.stderr;
    let status = out.status.expect("the child hung");
    assert!(!status.success(), "the child survived: {stderr}");
    assert!(
        stderr.contains("a scoped native generator ended its scope on a thread other than its own"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("the scope returned"), "stderr:\n{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "SIGABRT; stderr:\n{stderr}");
    }
}
