//! Criterion benches of the check against the limit on memory mappings (`src/limits.rs`), with baselines in
//! the same run. `cargo bench --bench limits` (Linux; `--features native` adds the native backend's lines).
//!
//! - `spawn_fresh/<backend>`: a coroutine that gets a new thread or stack (pooling off), runs and is dropped:
//!   the path that pays the check (one compare-and-swap, and now and then a count of the mappings), beside
//!   `baseline/thread_spawn_join` (`std::thread::spawn` + `join`) and `baseline/mmap_stack` (the `mmap`,
//!   `mprotect` and `munmap` of a 2 MiB stack with a guard page). Pooled reuse does not get to the check.
//! - `count_maps/<extra>`: reading `/proc/self/maps` as the check does, with this many mappings added to the
//!   process (the slow path, which a count makes once per half of the room it finds).

use std::fs::File;
use std::io::Read;

use criterion::{Criterion, criterion_group, criterion_main};

/// The lines of `/proc/self/maps`, read through a 64 KiB buffer as `src/limits.rs` does.
#[cfg(target_os = "linux")]
fn count_maps(buf: &mut [u8]) -> usize {
    let mut file = File::open("/proc/self/maps").expect("/proc/self/maps");
    let mut lines = 0;
    loop {
        match file.read(buf).expect("read /proc/self/maps") {
            0 => return lines,
            n => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

#[cfg(target_os = "linux")]
fn spawn_fresh(c: &mut Criterion) {
    use cothread::{Backend, Builder, pool};

    let mut g = c.benchmark_group("spawn_fresh");
    let before = pool::max_idle();
    pool::set_max_idle(0);
    let backends = [
        Some(("thread", Backend::Thread)),
        #[cfg(feature = "native")]
        Backend::Native
            .is_available()
            .then_some(("native", Backend::Native)),
    ];
    for (name, backend) in backends.into_iter().flatten() {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut co = Builder::new().backend(backend).spawn(|| 1).expect("spawn");
                co.enter().into_returned()
            })
        });
    }
    g.bench_function("baseline/thread_spawn_join", |b| {
        b.iter(|| std::thread::spawn(|| 1).join().expect("join"))
    });
    g.bench_function("baseline/mmap_stack", |b| b.iter(mmap_stack));
    g.finish();
    pool::set_max_idle(before);
}

/// Maps a 2 MiB stack with a guard page below it and unmaps it, as the native backend does for a new stack.
#[cfg(target_os = "linux")]
fn mmap_stack() {
    let page = 4096;
    let len = (2 << 20) + page;
    // SAFETY: an anonymous private mapping with no address hint; the result is checked, and only this
    // mapping is protected and unmapped.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        let usable = map.cast::<u8>().add(page).cast();
        assert_eq!(
            libc::mprotect(usable, len - page, libc::PROT_READ | libc::PROT_WRITE),
            0
        );
        assert_eq!(libc::munmap(map, len), 0);
    }
}

#[cfg(target_os = "linux")]
fn count(c: &mut Criterion) {
    let mut g = c.benchmark_group("count_maps");
    let mut buf = vec![0u8; 64 << 10];
    for extra in [0usize, 10_000, 40_000] {
        // About `extra` more mappings: one region in which every other page is made inaccessible, so that
        // each page is a mapping of its own.
        let page = 4096;
        let len = (extra + 1) * page;
        // SAFETY: an anonymous private mapping, checked; only its own pages are protected, and it is unmapped
        // below.
        let map = unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_NORESERVE,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            for i in 0..extra / 2 {
                let p = map.cast::<u8>().add(2 * i * page).cast();
                assert_eq!(libc::mprotect(p, page, libc::PROT_NONE), 0);
            }
            map
        };
        let lines = count_maps(&mut buf);
        assert!(lines >= extra, "{lines} mappings");
        g.bench_function(format!("{extra}"), |b| b.iter(|| count_maps(&mut buf)));
        eprintln!("count_maps/{extra}: {lines} mappings in all");
        // SAFETY: the mapping made above, no longer used.
        unsafe {
            assert_eq!(libc::munmap(map, len), 0);
        }
    }
    g.finish();
}

#[cfg(target_os = "linux")]
criterion_group!(benches, spawn_fresh, count);

#[cfg(target_os = "linux")]
criterion_main!(benches);

#[cfg(not(target_os = "linux"))]
fn main() {}
