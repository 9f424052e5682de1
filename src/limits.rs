//! The per-process limit on memory mappings, checked before a coroutine maps a new thread or stack.
//!
//! Linux caps the mappings (VMAs) of a process at `vm.max_map_count` (65,530 by default). A new thread of the
//! thread backend adds about [`THREAD_MAPS`], a new native stack `STACK_MAPS`. At the cap, `mmap` and
//! `mprotect` fail, and std's start-up of a new thread, which maps the thread's alternate signal stack after
//! the thread itself was created, fails where no `Err` can reach the caller (a panic in the new thread, which
//! can abort the process).
//! So before a coroutine maps anything new, [`reserve`] refuses it with an `Err` once the process's mappings
//! come near the cap. Reusing a pooled thread or stack maps nothing and does not get here.
//!
//! Counting the mappings (the lines of `/proc/self/maps`) costs 0.2 to 0.7 µs a mapping, so it is not done at
//! every spawn: a count grants half of the room it finds as *credit*, which spawns draw on with one atomic
//! compare-and-swap, and the next count comes when the credit runs out. What cothread unmaps for sure is
//! credited back ([`release`]: a native stack, a pool thread's signal stack); other frees wait for the next
//! count, and mappings made by other code are not charged (the half not granted and the reserve below the
//! cap leave room for them). After a refusal, spawns that find no credit are refused without a new count for
//! ten times as long as that count took, so that a caller retrying in a loop spends at most about a tenth
//! of its time counting.
//!
//! Elsewhere (other systems, Miri, loom) there is no check and the operating system's error is what a spawn
//! returns.

use std::io;

/// Mappings a new thread adds: its stack and that stack's guard page (glibc's `pthread_create`), and std's
/// alternate signal stack for it and that one's guard page.
pub(crate) const THREAD_MAPS: usize = 4;

/// Mappings an exiting thread gives back for sure: std's alternate signal stack and its guard page (glibc may
/// keep the thread's stack mapped, for its next thread).
pub(crate) const THREAD_EXIT_MAPS: usize = 2;

/// Mappings a new native stack adds, and gives back when unmapped: the stack and its guard page.
#[cfg(cothread_native)]
pub(crate) const STACK_MAPS: usize = 2;

/// Before mapping a new thread or stack that adds about `maps` mappings: an error of kind
/// [`io::ErrorKind::OutOfMemory`] if the process's mappings would pass cothread's threshold (see the module
/// documentation).
#[cfg(all(target_os = "linux", not(miri), not(loom)))]
#[inline]
pub(crate) fn reserve(maps: usize) -> io::Result<()> {
    imp::reserve(maps)
}

/// After unmapping (or starting to unmap) `maps` mappings that [`reserve`] was charged for: credits them back.
#[cfg(all(target_os = "linux", not(miri), not(loom)))]
#[inline]
pub(crate) fn release(maps: usize) {
    imp::release(maps);
}

/// No check here: the operating system's error is what a spawn returns.
#[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
#[inline]
pub(crate) fn reserve(maps: usize) -> io::Result<()> {
    let _ = maps;
    Ok(())
}

/// No check here, nothing to credit.
#[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
#[inline]
pub(crate) fn release(maps: usize) {
    let _ = maps;
}

#[cfg(all(target_os = "linux", not(miri), not(loom)))]
mod imp {
    use std::fs::File;
    use std::io::{self, Read};
    use std::time::{Duration, Instant};

    use crate::sync::Mutex;
    use crate::sync::atomic::{AtomicUsize, Ordering};

    /// The share of `vm.max_map_count` kept free by default: a 16th (4,095 of 65,530 mappings), for the rest
    /// of the process (its own threads and `mmap`s, malloc's arenas and large blocks).
    const RESERVE_DIVISOR: usize = 16;

    /// How much longer than a count that found no room later spawns without credit are refused uncounted.
    const HOLD_OFF_FACTOR: u32 = 10;

    /// The size of the buffer `/proc/self/maps` is read through: under glibc's smallest `mmap` threshold
    /// (128 KiB), so that it comes from the heap even when no new mapping can be made.
    const READ_CHUNK: usize = 64 << 10;

    struct Budget {
        /// Mappings that spawns may still add before the next count. `usize::MAX` where nothing can be
        /// counted (no `/proc`): then every spawn passes.
        credit: AtomicUsize,
        /// One count at a time.
        counting: Mutex<Counting>,
    }

    struct Counting {
        /// The most mappings cothread lets the process reach: `vm.max_map_count` less its 16th, or less
        /// with `COTHREAD_MAX_MAPS`. `None`: not known, no check.
        threshold: Option<usize>,
        /// `vm.max_map_count`, for the error message.
        limit: usize,
        /// Where `/proc/self/maps` is read to; allocated at the first count.
        buf: Vec<u8>,
        /// The last refusal: until this instant, spawns without credit that need more than the room it found
        /// are refused with it, uncounted.
        hold_off: Option<(Instant, Refusal)>,
    }

    /// What a refusal reports.
    #[derive(Clone, Copy)]
    struct Refusal {
        room: usize,
        mapped: usize,
        threshold: usize,
        limit: usize,
    }

    impl Refusal {
        fn error(self) -> io::Error {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "cothread: refused to map a new coroutine thread or stack: the process has {} memory \
                    mappings and cothread keeps it under {} (the kernel's limit, vm.max_map_count, is {}; \
                    see COTHREAD_MAX_MAPS)",
                    self.mapped, self.threshold, self.limit
                ),
            )
        }
    }

    crate::sync::global! {
        static BUDGET: Budget = Budget::new();
    }

    #[inline]
    pub(super) fn reserve(maps: usize) -> io::Result<()> {
        if BUDGET.take_credit(maps) {
            return Ok(());
        }
        BUDGET.reserve_slow(maps)
    }

    #[inline]
    pub(super) fn release(maps: usize) {
        // `usize::MAX` (nothing counted) stays; nothing else comes near it.
        let _ = BUDGET
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |credit| {
                (credit != usize::MAX).then(|| credit.saturating_add(maps).min(usize::MAX - 1))
            });
    }

    impl Budget {
        fn new() -> Budget {
            let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n > 0);
            let threshold = limit.map(|limit| {
                let default = limit - limit / RESERVE_DIVISOR;
                crate::settings::env_number("COTHREAD_MAX_MAPS", default as u64, default as u64)
                    as usize
            });
            Budget {
                credit: AtomicUsize::new(if threshold.is_some() { 0 } else { usize::MAX }),
                counting: Mutex::new(Counting {
                    threshold,
                    limit: limit.unwrap_or(0),
                    buf: Vec::new(),
                    hold_off: None,
                }),
            }
        }

        /// Draws `maps` from the credit, if there is that much.
        #[inline]
        fn take_credit(&self, maps: usize) -> bool {
            let mut credit = self.credit.load(Ordering::Relaxed);
            while credit >= maps {
                if credit == usize::MAX {
                    return true;
                }
                match self.credit.compare_exchange_weak(
                    credit,
                    credit - maps,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(now) => credit = now,
                }
            }
            false
        }

        /// Out of credit: counts the mappings, and refuses or grants new credit.
        #[cold]
        fn reserve_slow(&self, maps: usize) -> io::Result<()> {
            let mut counting = self.counting.lock();
            // Another spawn may have counted while this one waited.
            if self.take_credit(maps) {
                return Ok(());
            }
            let Some(threshold) = counting.threshold else {
                return Ok(());
            };
            if let Some((until, refusal)) = counting.hold_off {
                if Instant::now() >= until {
                    counting.hold_off = None;
                } else if maps > refusal.room {
                    return Err(refusal.error());
                }
            }
            let started = Instant::now();
            let mapped = match count_maps(&mut counting.buf) {
                Ok(mapped) => mapped,
                // No `/proc` to read (a sandbox): from now on the operating system's error is all there is.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    counting.threshold = None;
                    self.credit.store(usize::MAX, Ordering::Relaxed);
                    return Ok(());
                }
                // Something passing (out of file descriptors): this spawn goes ahead unchecked, the next
                // one counts again.
                Err(_) => return Ok(()),
            };
            let room = threshold.saturating_sub(mapped);
            if room < maps {
                let refusal = Refusal {
                    room,
                    mapped,
                    threshold,
                    limit: counting.limit,
                };
                let now = Instant::now();
                let hold: Duration = (now - started) * HOLD_OFF_FACTOR;
                counting.hold_off = Some((now + hold, refusal));
                return Err(refusal.error());
            }
            // Half the room, less this spawn's share, added to what is left of the credit (less than `maps`,
            // plus what was freed since): that may count a free the count saw too, a few mappings at most,
            // which the reserve below the kernel's limit covers.
            let grant = (room / 2).max(maps) - maps;
            self.credit.fetch_add(grant, Ordering::Relaxed);
            Ok(())
        }
    }

    /// The number of lines of `/proc/self/maps`: the process's mappings (plus `[vsyscall]` where it exists).
    fn count_maps(buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.resize(READ_CHUNK, 0);
        let mut file = File::open("/proc/self/maps")?;
        let mut lines = 0;
        loop {
            match file.read(buf) {
                Ok(0) => return Ok(lines),
                Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
