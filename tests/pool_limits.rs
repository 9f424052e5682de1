//! The pools at the per-process limit on memory mappings: the idle stacks or threads a burst left (which keep
//! their mappings) do not keep a later spawn of other settings from going through. A native spawn unmaps the
//! idle stacks and goes through at once; a thread-backend spawn is refused, tells the idle threads to exit, and
//! the next one goes through once they have. Linux only, where cothread checks the limit, and in a child
//! process (this binary again, test `child`), whose mappings the parent caps with `COTHREAD_MAX_MAPS` at its
//! own count plus [`EXTRA_MAPS`].
#![cfg(all(target_os = "linux", not(miri)))]

#[path = "common/child.rs"]
mod child;
#[path = "common/maps.rs"]
mod maps;

use std::io;
use std::time::{Duration, Instant};

use cothread::{Backend, Builder, Coroutine, Resume, pool, yield_now};
use maps::count_maps;

/// Set in a child: run the child's part.
const CHILD: &str = "COTHREAD_POOL_LIMITS_CHILD";

/// Mappings the child may add to what its parent has: about 1,000 native stacks or 500 threads (fewer than
/// `BURST_CAP`, so the pool keeps every one of them).
const EXTRA_MAPS: usize = 2_000;

/// The stack sizes of the burst and of the later spawn: two buckets, so the later one finds no idle stack.
const BURST_STACK: usize = 16 << 10;
const LATER_STACK: usize = 64 << 10;

fn builder(backend: Backend, stack: usize) -> Builder {
    Builder::new().backend(backend).stack_size(stack)
}

fn stats(backend: Backend) -> pool::PoolStats {
    match backend {
        #[cfg(cothread_native)]
        Backend::Native => pool::native_stats(),
        _ => pool::stats(),
    }
}

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn child() {
    let backend = match std::env::var(CHILD).as_deref() {
        Err(_) => return,
        Ok("thread") => Backend::Thread,
        #[cfg(cothread_native)]
        Ok("native") => Backend::Native,
        Ok(other) => panic!("unknown case {other}"),
    };
    // Pooling on, whatever the environment says (ci/pool-off.sh runs the suite with it off).
    pool::set_max_idle(pool::DEFAULT_MAX_IDLE);
    // A burst up to the cap.
    let mut live: Vec<Coroutine> = Vec::new();
    let refused = loop {
        match builder(backend, BURST_STACK).spawn(yield_now) {
            Ok(mut co) => {
                assert_eq!(co.enter(), Resume::Yielded);
                live.push(co);
            }
            Err(e) => break e,
        }
        assert!(live.len() <= EXTRA_MAPS, "no spawn refused");
    };
    assert_eq!(refused.kind(), io::ErrorKind::OutOfMemory, "{refused}");
    let spawned = live.len();
    // All finish; the pool keeps their stacks, and their mappings.
    for co in &mut live {
        assert_eq!(co.enter(), Resume::Returned(()));
    }
    drop(live);
    let kept = stats(backend);
    assert_eq!(kept.idle, spawned, "the burst's are kept: {kept:?}");
    // Another stack size: none idle, no room left; the idle ones give way.
    let later = || builder(backend, LATER_STACK).spawn(|| 7);
    let mut later = match backend {
        Backend::Thread => {
            // Refused while the idle threads hold their mappings; they are told to exit.
            let first = later().map(drop).map_err(|e| e.kind());
            assert_eq!(first, Err(io::ErrorKind::OutOfMemory));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match later() {
                    Ok(co) => break co,
                    Err(e) if Instant::now() > deadline => {
                        panic!("still refused after the idle threads were told to exit: {e}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        _ => later().expect("a spawn while idle stacks hold the mappings"),
    };
    assert_eq!(later.enter().into_returned(), Some(7));
    let after = stats(backend);
    // The burst's are gone from the pool (threads exit on their own time, some may still be on their way
    // out), but for one: the later coroutine's thread, idle again, or this thread's own last stack, which is
    // not in the shared pool.
    assert_eq!(after.idle, 1, "{kept:?} -> {after:?}");
    eprintln!(
        "pool limits child: {backend:?}: {spawned} live, refused ({refused}), kept idle, then a spawn of \
         another stack size went through"
    );
}

#[test]
fn idle_threads_give_way_to_a_spawn_at_the_limit() {
    run_child("thread");
}

#[cfg(cothread_native)]
#[test]
fn idle_stacks_give_way_to_a_spawn_at_the_limit() {
    run_child("native");
}

/// Runs the child on `backend` (a `CHILD` value) and asserts that it succeeded.
fn run_child(backend: &str) {
    let mut cmd = child::self_command(&["--exact", "child", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD, backend)
        .env("COTHREAD_MAX_MAPS", (count_maps() + EXTRA_MAPS).to_string());
    let out = child::run(cmd, None);
    assert!(
        out.status.is_some_and(|s| s.success()),
        "the child failed or hung ({:?}); stderr:\n{}",
        out.status,
        out.stderr
    );
    assert!(
        out.stderr.contains("pool limits child: "),
        "no report from the child; stderr:\n{}",
        out.stderr
    );
}
