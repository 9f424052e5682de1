//! Stack overflow in a native coroutine (Unix): the guard page below every native stack turns an overflow into
//! a `SIGSEGV` (or `SIGBUS`), and this module makes the process die saying so, as Rust's runtime does for a
//! thread ("has overflowed its stack"), instead of dying of a bare segmentation fault.
//!
//! Rust's own handler only recognises the guard page of the thread's own stack: for a fault anywhere else it
//! restores the default action and returns, so the fault repeats and kills the process silently. So a handler
//! of ours goes in front of it (installed once, when the first native coroutine starts) and chains to whatever
//! handler was there before for every fault that is not in the guard page of the native stack running on the
//! faulting thread. Which stack runs, the handler finds through the thread's running coroutine
//! ([`running_guard`](super::running_guard)), so nothing is recorded at each switch.
//!
//! The handler runs on the thread's alternate signal stack (the overflowed stack has no room). Threads made by
//! `std` have one; [`prepare_thread`] gives one to any other thread before a native coroutine starts on it.

use std::cell::RefCell;

use libc::{c_int, c_void, siginfo_t};

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Once, OnceLock};

std::thread_local! {
    /// An alternate signal stack this module made for this thread, freed when the thread exits.
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// The page size, read once when the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The action that was installed for `SIGSEGV` and `SIGBUS` before ours.
static PREVIOUS: [OnceLock<Action>; 2] = [OnceLock::new(), OnceLock::new()];
const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// A saved `sigaction`: plain data (a handler address, a mask, flags).
struct Action(libc::sigaction);
// SAFETY: `libc::sigaction` holds a handler address, a signal mask and flags, and nothing that belongs to a
// thread; it is written once, before our handler is installed, and only read afterwards.
unsafe impl Send for Action {}
// SAFETY: as above: read-only after it is set.
unsafe impl Sync for Action {}

/// Before the first native coroutine starts on this thread (when the thread gets its token): installs the
/// handler (once per process) and makes sure the thread has an alternate signal stack.
pub(super) fn prepare_thread() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    // SAFETY: a zeroed `stack_t` is a valid value (null pointer, no flags, size 0), and `sigaltstack` with a
    // null new stack only reads this thread's current setting into it.
    let (queried, old) = unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        (libc::sigaltstack(std::ptr::null(), &mut old), old)
    };
    if queried == 0 && old.ss_flags & libc::SS_DISABLE == 0 {
        return; // std's threads (and the main thread) have one already.
    }
    if let Some(alt) = AltStack::new() {
        // A thread already tearing down its thread-locals gets none (`alt` is dropped, which disables it).
        let _ = ALT_STACK.try_with(|a| *a.borrow_mut() = Some(alt));
    }
}

fn install() {
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed `sigaction` is a valid value (no handler, empty mask, no flags), and `sigaction` with
        // a null new action only reads the current one into it.
        let (queried, old) = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(signal, std::ptr::null(), &mut old), old)
        };
        if queried != 0 {
            continue;
        }
        // Saved before ours goes in, so that the handler can always find it.
        let _ = PREVIOUS[i].set(Action(old));
        // SAFETY: as above; `handler` has the signature `SA_SIGINFO` asks for and only does what is safe in a
        // signal handler (loads, `write`, `abort`, `sigaction`, calling the previous handler).
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = handler as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(signal, &new, std::ptr::null_mut());
        }
    }
}

/// Our `SIGSEGV`/`SIGBUS` handler: reports an overflow of the running native stack and aborts; passes every
/// other fault on.
///
/// # Safety
/// Only the kernel calls it, as a handler installed with `SA_SIGINFO`, with that signal's arguments.
unsafe extern "C" fn handler(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` for a handler installed with `SA_SIGINFO`, and a fault
    // signal's `si_addr` is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let guard = super::running_guard();
    let page = PAGE.load(Ordering::Relaxed);
    if guard != 0 && addr >= guard && addr - guard < page {
        report_overflow(guard);
    }
    // SAFETY: we were called as a handler for `signal` with these arguments, which is what the previous handler
    // expects too.
    unsafe { chain(signal, info, context) }
}

/// Hands a fault that is not ours to the handler installed before ours (std's, usually).
///
/// # Safety
/// Called from [`handler`] with the arguments the kernel gave it.
unsafe fn chain(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let previous = SIGNALS
        .iter()
        .position(|&s| s == signal)
        .and_then(|i| PREVIOUS[i].get());
    let handler = previous.map_or(libc::SIG_DFL, |a| a.0.sa_sigaction);
    match (previous, handler) {
        (Some(action), h) if h != libc::SIG_DFL && h != libc::SIG_IGN => {
            if action.0.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous action was installed with `SA_SIGINFO`, so its handler address (not
                // `SIG_DFL`/`SIG_IGN`, checked above) is a function of this signature; we pass on the arguments
                // the kernel gave us.
                unsafe {
                    let f: unsafe extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
                        std::mem::transmute(h);
                    f(signal, info, context)
                }
            } else {
                // SAFETY: without `SA_SIGINFO` the handler address is a function of the signal number only.
                unsafe {
                    let f: unsafe extern "C" fn(c_int) = std::mem::transmute(h);
                    f(signal)
                }
            }
        }
        _ => {
            // No handler before ours: restore the default action and return, so that the faulting instruction
            // faults again and the signal kills the process as if we had never been installed.
            // SAFETY: a zeroed `sigaction` with `SIG_DFL` is the default action; `sigaction` is async-signal-safe.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

/// Writes the report to stderr and aborts: only async-signal-safe calls, no allocation.
fn report_overflow(guard: usize) -> ! {
    let mut buf = [0u8; 160];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"\ncothread: a native coroutine has overflowed its stack (guard page at 0x");
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        let nibble = (guard >> ((15 - i) * 4)) & 0xf;
        *digit = b"0123456789abcdef"[nibble];
    }
    put(&hex);
    put(b")\nfatal runtime error: stack overflow, aborting\n");
    // SAFETY: `write` and `abort` are async-signal-safe; `buf[..len]` is initialised.
    unsafe {
        libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len);
        libc::abort();
    }
}

/// An alternate signal stack made for a thread that had none; disabled and unmapped when the thread exits.
struct AltStack {
    map: *mut c_void,
    len: usize,
}

impl AltStack {
    /// 64 KiB (enough for the handler and the ones it chains to) above a guard page, installed for this thread.
    fn new() -> Option<AltStack> {
        let page = PAGE.load(Ordering::Relaxed);
        let size = (64 << 10).max(libc::SIGSTKSZ);
        let len = page + size;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let alt = AltStack { map, len };
        // SAFETY: the first page of our own fresh mapping becomes the guard page; the rest is the signal stack,
        // valid until `drop` disables it before unmapping.
        unsafe {
            if libc::mprotect(map, page, libc::PROT_NONE) != 0 {
                return None; // `alt` unmaps it
            }
            let stack = libc::stack_t {
                ss_sp: map.cast::<u8>().add(page).cast(),
                ss_flags: 0,
                ss_size: size,
            };
            if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
                return None;
            }
        }
        Some(alt)
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: disabling the alternate stack first means no handler can be running on it or start on it; the
        // mapping is ours.
        unsafe {
            let disable = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&disable, std::ptr::null_mut());
            libc::munmap(self.map, self.len);
        }
    }
}

// The integration tests' child processes: started through cargo's runner (qemu-user) when there is one.
#[cfg(all(test, not(miri)))]
#[path = "../../../tests/common/child.rs"]
mod child;

/// Each case runs this test binary again as a child process that crashes on purpose, and checks how it died.
// Not under Miri: Miri cannot spawn child processes.
#[cfg(all(test, not(miri)))]
mod tests {
    use std::process::ExitStatus;

    use super::child;
    use crate::{Backend, Builder, Resume};

    const CHILD: &str = "COTHREAD_OVERFLOW_UNIT_CHILD";

    #[inline(never)]
    fn bottomless(depth: u64) -> u64 {
        let pad = std::hint::black_box([depth as u8; 4096]);
        if std::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        bottomless(depth + 1) + pad[7] as u64
    }

    fn native(f: impl FnOnce() -> u64 + Send + 'static) -> u64 {
        let mut co = Builder::new()
            .backend(Backend::Native)
            .stack_size(256 << 10)
            .spawn(f)
            .expect("coroutine");
        co.enter().into_returned().expect("returned")
    }

    /// The child's part: does nothing unless `CHILD` is set.
    #[test]
    fn crash_child() {
        let Ok(case) = std::env::var(CHILD) else {
            return;
        };
        match case.as_str() {
            "no_altstack" => {
                // SAFETY: disabling this thread's alternate signal stack only changes where its handlers run.
                unsafe {
                    let disable = libc::stack_t {
                        ss_sp: std::ptr::null_mut(),
                        ss_flags: libc::SS_DISABLE,
                        ss_size: 0,
                    };
                    assert_eq!(libc::sigaltstack(&disable, std::ptr::null_mut()), 0);
                }
                native(|| bottomless(0));
            }
            "wild_pointer" => {
                native(|| {
                    // SAFETY: not safe at all, on purpose: the child must die of this fault.
                    unsafe { std::ptr::read_volatile(std::hint::black_box(16usize) as *const u64) }
                });
            }
            "thread_overflow" => {
                // Our handler is installed once a native coroutine has started ...
                assert_eq!(native(|| 1), 1);
                // ... and an overflow of an ordinary thread's stack still gets std's report.
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(|| bottomless(0))
                    .expect("thread")
                    .join()
                    .expect("join");
            }
            other => panic!("unknown case {other}"),
        }
        unreachable!("the child should have died");
    }

    fn run(case: &str) -> (Option<ExitStatus>, String) {
        let mut cmd = child::self_command(&[
            "--exact",
            "backend::native::overflow::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ]);
        cmd.env(CHILD, case);
        let out = child::run(cmd, Some("has overflowed its stack"));
        (out.status, out.stderr)
    }

    fn signal(status: Option<ExitStatus>) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        status.and_then(|s| s.signal())
    }

    #[test]
    fn overflow_on_a_thread_without_an_alternate_signal_stack_is_reported() {
        let (status, stderr) = run("no_altstack");
        assert!(
            stderr.contains("a native coroutine has overflowed its stack"),
            "{stderr}"
        );
        assert_eq!(signal(status), Some(libc::SIGABRT), "{stderr}");
    }

    #[test]
    fn other_faults_are_passed_on() {
        let (status, stderr) = run("wild_pointer");
        assert!(!stderr.contains("overflowed"), "{stderr}");
        assert!(
            matches!(signal(status), Some(libc::SIGSEGV | libc::SIGBUS)),
            "died of {status:?}: {stderr}"
        );
    }

    #[test]
    fn thread_overflows_still_get_stds_report() {
        let (status, stderr) = run("thread_overflow");
        assert!(stderr.contains("has overflowed its stack"), "{stderr}");
        assert!(!stderr.contains("native coroutine"), "{stderr}");
        assert_eq!(signal(status), Some(libc::SIGABRT), "{stderr}");
    }

    #[test]
    fn guard_tracking_follows_nested_switches() {
        // The guard page the overflow handler sees follows the running coroutine through nested enters and
        // yields, and is none outside coroutines.
        let outer = super::super::running_guard();
        assert_eq!(outer, 0);
        let mut co = Builder::new()
            .backend(Backend::Native)
            .spawn(|| {
                let mine = super::super::running_guard();
                let mut inner = Builder::new()
                    .backend(Backend::Native)
                    .spawn(super::super::running_guard)
                    .expect("inner");
                let theirs = inner.enter().into_returned().expect("returned");
                assert_ne!(mine, 0);
                assert_ne!(theirs, mine);
                assert_eq!(super::super::running_guard(), mine);
                crate::yield_now();
                mine
            })
            .expect("coroutine");
        assert_eq!(co.enter(), Resume::Yielded);
        assert_eq!(super::super::running_guard(), outer);
        assert!(co.enter().into_returned().is_some());
        assert_eq!(super::super::running_guard(), outer);
    }
}
