//! The native stack pool at the per-process limit on memory mappings: the idle stacks a burst left (which keep
//! their mappings) do not make a later spawn of another stack size fail; that spawn unmaps them and goes
//! through. Linux only, where cothread checks the limit, and in a child process (this binary again, test
//! `child`), whose mappings the parent caps with `COTHREAD_MAX_MAPS` at its own count plus [`EXTRA_MAPS`].
#![cfg(all(target_os = "linux", cothread_native, not(miri)))]

#[path = "common/child.rs"]
mod child;

use std::fs::File;
use std::io::{self, Read};

use cothread::{Backend, Builder, Coroutine, Resume, pool, yield_now};

/// Set in a child: run the child's part.
const CHILD: &str = "COTHREAD_POOL_LIMITS_CHILD";

/// Mappings the child may add to what its parent has: about 1,000 native stacks (fewer than `BURST_CAP`, so
/// the pool keeps every one of them).
const EXTRA_MAPS: usize = 2_000;

/// The stack sizes of the burst and of the later spawn: two buckets, so the later one finds no idle stack.
const BURST_STACK: usize = 16 << 10;
const LATER_STACK: usize = 64 << 10;

/// The lines of `/proc/self/maps`, read through a small buffer (a large one would be a mapping of its own).
fn count_maps() -> usize {
    let mut file = File::open("/proc/self/maps").expect("/proc/self/maps");
    let mut buf = [0u8; 16 << 10];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return lines,
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading /proc/self/maps: {e}"),
        }
    }
}

fn native(stack: usize) -> Builder {
    Builder::new().backend(Backend::Native).stack_size(stack)
}

/// The child's part: does nothing unless `CHILD` is set.
#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // A burst up to the cap.
    let mut live: Vec<Coroutine> = Vec::new();
    let refused = loop {
        match native(BURST_STACK).spawn(yield_now) {
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
    let kept = pool::native_stats();
    assert_eq!(kept.idle, spawned, "the burst's stacks are kept: {kept:?}");
    // A stack of another size: none idle, no room left; the idle ones give way.
    let mut later = native(LATER_STACK)
        .spawn(|| 7)
        .expect("a spawn while idle stacks hold the mappings");
    assert_eq!(later.enter().into_returned(), Some(7));
    let after = pool::native_stats();
    // This thread's own last stack stays (it is not in the shared pool).
    assert!(
        after.exited - kept.exited >= (spawned - 1) as u64,
        "{kept:?} -> {after:?}"
    );
    eprintln!(
        "pool limits child: {spawned} stacks live, refused ({refused}), kept idle, then a spawn of another \
         size unmapped them and went through"
    );
}

#[test]
fn idle_stacks_give_way_to_a_spawn_at_the_limit() {
    if !Backend::Native.is_available() {
        return;
    }
    let mut cmd = child::self_command(&["--exact", "child", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD, "1")
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
