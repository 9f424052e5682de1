//! Spawning at the per-process limit on memory mappings: a spawn is refused with an `Err` and the process
//! goes on (no abort in std's thread start-up, no panic). Linux only, where cothread checks the limit.
//!
//! Each case runs in a child process (this binary again, test `child`) that spawns coroutines, keeping each
//! suspended, until a spawn is refused. To keep that bounded, the parent caps the child's mappings with
//! `COTHREAD_MAX_MAPS` at its own count plus [`EXTRA_MAPS`] (a few hundred threads or a thousand stacks)
//! rather than letting it reach `vm.max_map_count` (about 15,000 threads). The same child at the real limit
//! is the ignored test `at_the_kernels_limit_*` (`cargo test --test limits -- --ignored`). A last case checks
//! that where the operating system refuses first (address space capped with `RLIMIT_AS`), a native spawn
//! returns its `ENOMEM`.
#![cfg(target_os = "linux")]

#[path = "common/child.rs"]
mod child;
#[path = "common/maps.rs"]
mod maps;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cothread::{Backend, Builder, Resume, yield_now};
use maps::count_maps;

/// Set in a child: which backend it spawns on.
const CHILD: &str = "COTHREAD_LIMITS_CHILD";

/// Mappings the child may add to what its parent has: about 500 threads or 1,000 native stacks.
const EXTRA_MAPS: usize = 2_000;

/// Mappings the child may see beyond cothread's threshold once refused, or fewer than the refused spawn's
/// share below it: what the runtime maps by itself between the two counts (ThreadSanitizer's runtime: 4).
const SLACK: usize = 16;

/// Runs the child on `backend` with its mappings capped at `cap` (none: the kernel's limit); asserts that it
/// exited cleanly after a refusal and returns its report.
fn run_child(backend: &str, cap: Option<usize>) -> String {
    let mut cmd = child::self_command(&["--exact", "child", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD, backend);
    match cap {
        Some(cap) => cmd.env("COTHREAD_MAX_MAPS", cap.to_string()),
        None => cmd.env_remove("COTHREAD_MAX_MAPS"),
    };
    let out = child::run(cmd, None);
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{backend}: the child failed or hung ({:?}); stderr:\n{}",
        out.status,
        out.stderr
    );
    let report = out
        .stderr
        .lines()
        .find(|l| l.starts_with("limits child: "))
        .unwrap_or_else(|| {
            panic!(
                "{backend}: no report from the child; stderr:\n{}",
                out.stderr
            )
        });
    eprintln!("{report}");
    report.to_owned()
}

/// Counts its drops: shows that the destructors on suspended coroutines' stacks ran.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    let backend = match case.as_str() {
        #[cfg(feature = "native")]
        "native_os" => return native_os_refusal(),
        "thread" => Backend::Thread,
        #[cfg(feature = "native")]
        "native" => Backend::Native,
        other => panic!("unknown case {other}"),
    };
    let threshold = std::env::var("COTHREAD_MAX_MAPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let per = if backend == Backend::Thread { 4 } else { 2 };
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut live = Vec::new();
    let refused = loop {
        let guard = Counted(dropped.clone());
        match Builder::new().backend(backend).spawn(move || {
            let _guard = guard;
            yield_now();
        }) {
            Ok(mut co) => {
                assert!(matches!(co.enter(), Resume::Yielded));
                live.push(co);
            }
            Err(e) => break e,
        }
        // Every one adds at least `per` mappings: past this many the cap was not enforced.
        if let Some(threshold) = threshold {
            assert!(
                live.len() <= threshold / per,
                "{case}: {} coroutines spawned and none refused",
                live.len()
            );
        }
    };
    let mapped = count_maps();
    let spawned = live.len();
    assert_eq!(
        refused.kind(),
        io::ErrorKind::OutOfMemory,
        "{case}: refused with {refused}"
    );
    assert!(
        refused.to_string().contains("memory mappings"),
        "{case}: refused by the OS, not by cothread's check: {refused}"
    );
    if let Some(threshold) = threshold {
        // Refused at the threshold: not past it, and not while a spawn still fitted under it.
        assert!(
            mapped <= threshold + SLACK && mapped + per + SLACK > threshold,
            "{case}: refused with {mapped} mappings; the threshold is {threshold}"
        );
        // A quarter: under ThreadSanitizer a thread takes about 6 mappings, not 4.
        assert!(
            spawned >= EXTRA_MAPS / per / 4,
            "{case}: refused after only {spawned} coroutines"
        );
    }
    // The refused spawn dropped its closure, unrun.
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    // Still refused while nothing was freed.
    let again = Builder::new().backend(backend).spawn(|| 7).map(drop);
    assert_eq!(
        again.map_err(|e| e.kind()),
        Err(io::ErrorKind::OutOfMemory),
        "{case}: a second spawn at the threshold"
    );
    // Dropping the others unwinds each from its yield; with pooling off their threads exit and their stacks
    // are unmapped.
    cothread::pool::set_max_idle(0);
    drop(live);
    assert_eq!(dropped.load(Ordering::SeqCst), spawned + 1);
    // The refusal does not stick: a spawn that maps a new thread or stack goes through and runs.
    let mut co = Builder::new()
        .backend(backend)
        .spawn(|| 7)
        .expect("a spawn after the coroutines were dropped");
    assert_eq!(co.enter().into_returned(), Some(7));
    eprintln!(
        "limits child: {case}: {spawned} coroutines live, then refused with {mapped} mappings: {refused}"
    );
}

/// The child's case `native_os`: the operating system refuses a native stack before cothread's check would
/// (the address space capped with `RLIMIT_AS` at 256 MiB more than the child has), and the spawn returns its
/// error, `ENOMEM`.
#[cfg(feature = "native")]
fn native_os_refusal() {
    const ROOM: usize = 256 << 20;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let size_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    let cap = (size_kib * 1024 + ROOM) as libc::rlim_t;
    let limit = libc::rlimit {
        rlim_cur: cap,
        rlim_max: cap,
    };
    // SAFETY: a valid `rlimit` for this process's own limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    // qemu-user does not pass RLIMIT_AS on (it would cap the emulator): then a mapping of twice the room
    // succeeds, and there is nothing to test.
    // SAFETY: an anonymous private mapping, unmapped at once if made.
    unsafe {
        let probe = libc::mmap(
            std::ptr::null_mut(),
            2 * ROOM,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        );
        if probe != libc::MAP_FAILED {
            libc::munmap(probe, 2 * ROOM);
            eprintln!(
                "limits child: native_os: RLIMIT_AS is not enforced here (an emulator); skipped"
            );
            return;
        }
    }
    let mut live = Vec::with_capacity(ROOM / (2 << 20));
    let refused = loop {
        match Builder::new().backend(Backend::Native).spawn(yield_now) {
            Ok(mut co) => {
                assert!(matches!(co.enter(), Resume::Yielded));
                live.push(co);
            }
            Err(e) => break e,
        }
        assert!(
            live.len() < ROOM / (2 << 20),
            "{} stacks of 2 MiB in 256 MiB",
            live.len()
        );
    };
    assert_eq!(
        refused.raw_os_error(),
        Some(libc::ENOMEM),
        "refused with {refused}"
    );
    let spawned = live.len();
    drop(live);
    eprintln!("limits child: native_os: {spawned} coroutines live, then the OS refused: {refused}");
}

#[test]
#[cfg_attr(miri, ignore = "starts a child process")]
fn thread_backend_spawns_until_refused() {
    run_child("thread", Some(count_maps() + EXTRA_MAPS));
}

#[cfg(feature = "native")]
#[test]
#[cfg_attr(miri, ignore = "starts a child process")]
fn native_backend_spawns_until_refused() {
    if !Backend::Native.is_available() {
        return;
    }
    run_child("native", Some(count_maps() + EXTRA_MAPS));
}

/// Where the operating system refuses first (here its limit on address space), a native spawn returns its
/// error.
#[cfg(feature = "native")]
#[test]
#[cfg_attr(miri, ignore = "starts a child process")]
fn native_backend_returns_the_os_error() {
    if !Backend::Native.is_available() {
        return;
    }
    run_child("native_os", None);
}

#[test]
#[ignore = "spawns about 15,000 threads, up to the kernel's limit on mappings (vm.max_map_count)"]
fn at_the_kernels_limit_thread_backend() {
    run_child("thread", None);
}

#[cfg(feature = "native")]
#[test]
#[ignore = "maps about 30,000 native stacks, up to the kernel's limit on mappings (vm.max_map_count)"]
fn at_the_kernels_limit_native_backend() {
    if !Backend::Native.is_available() {
        return;
    }
    run_child("native", None);
}
