//! The synchronisation shim: the one module that names `parking_lot`, `crossbeam-channel` or `loom`.
//!
//! Every other module imports `crate::sync::{Mutex, Condvar, Arc, atomic, thread, channel, ...}`. Normally these
//! are `parking_lot`, `std` and `crossbeam-channel`; under `--cfg loom` they are loom's types wrapped to the same
//! shape, so that the loom models in `loom-tests/` check the crate's real code, not a copy of its protocol.

#[cfg(not(loom))]
mod imp {
    pub(crate) use crossbeam_channel as channel;
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::Arc;
    /// For the native backend's stack overflow report (Unix only).
    #[cfg(all(cothread_native, unix))]
    pub(crate) use std::sync::Once;
    /// One-time initialisation, for the native backend and the thread backend's CPU moves (Linux); never built
    /// under loom.
    #[cfg(any(cothread_native, target_os = "linux"))]
    pub(crate) use std::sync::OnceLock;
    pub(crate) use std::thread;
    pub(crate) use std::thread_local;

    pub(crate) mod atomic {
        /// For the native backend only (never built under loom).
        #[cfg(cothread_native)]
        pub(crate) use std::sync::atomic::fence;
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        };
    }

    pub(crate) mod cell {
        /// `std::cell::UnsafeCell` in loom's shape: access goes through [`with_mut`](UnsafeCell::with_mut),
        /// which loom checks for races and which compiles to a plain pointer here.
        #[derive(Debug, Default)]
        pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

        impl<T> UnsafeCell<T> {
            pub(crate) const fn new(value: T) -> UnsafeCell<T> {
                UnsafeCell(std::cell::UnsafeCell::new(value))
            }
        }

        impl<T: ?Sized> UnsafeCell<T> {
            /// Reads through a pointer; the caller makes sure nobody writes the value meanwhile.
            #[inline(always)]
            pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
                f(self.0.get())
            }

            /// Writes through a pointer; the caller makes sure nobody else touches the value meanwhile.
            #[inline(always)]
            pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
                f(self.0.get())
            }
        }
    }

    /// A process-wide value built on first use (`std::sync::LazyLock`; loom's `lazy_static!` under loom, which
    /// builds the value anew for every execution of a model).
    macro_rules! global {
        ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
            $(#[$attr])*
            static $name: std::sync::LazyLock<$ty> = std::sync::LazyLock::new(|| $init);
        };
    }
    pub(crate) use global;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::Arc;

    /// `thread_local!` in std's shape. loom's own macro matches the initialiser as an edition-2021 `expr`,
    /// which does not accept std's `const { ... }` form, so that form is unwrapped here.
    macro_rules! loom_thread_local {
        ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
            loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
        };
        ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
            loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
        };
    }
    pub(crate) use loom_thread_local as thread_local;

    /// loom's threads, with a `Builder` that records every thread it spawns so that a model can join them
    /// all before it ends ([`join_spawned`](thread::join_spawned)): loom requires every thread of an
    /// execution to have finished when the model's closure returns, and the pool's threads are detached.
    pub(crate) mod thread {
        use std::io;

        pub(crate) use loom::thread::yield_now;

        type Handles = super::Mutex<Vec<loom::thread::JoinHandle<()>>>;

        loom::lazy_static! {
            /// Every thread spawned through [`Builder`] in this execution and not joined yet.
            static ref SPAWNED: Handles = super::Mutex::new(Vec::new());
        }

        /// `std::thread::Builder`'s shape, for threads whose closure returns `()`.
        pub(crate) struct Builder(loom::thread::Builder);

        impl Builder {
            pub(crate) fn new() -> Builder {
                Builder(loom::thread::Builder::new())
            }
            pub(crate) fn name(self, name: String) -> Builder {
                Builder(self.0.name(name))
            }
            pub(crate) fn stack_size(self, bytes: usize) -> Builder {
                Builder(self.0.stack_size(bytes))
            }
            /// Spawns the thread. Unlike std, hands back no `JoinHandle`: the handle is kept for
            /// [`join_spawned`].
            pub(crate) fn spawn<F>(self, f: F) -> io::Result<()>
            where
                F: FnOnce() + Send + 'static,
            {
                let handle = self.0.spawn(f)?;
                SPAWNED.lock().push(handle);
                Ok(())
            }
        }

        /// Joins every thread spawned through [`Builder`] in this execution, including threads spawned while
        /// this waits. Propagates a thread's panic.
        pub(crate) fn join_spawned() {
            loop {
                let Some(handle) = SPAWNED.lock().pop() else {
                    return;
                };
                if let Err(payload) = handle.join() {
                    std::panic::resume_unwind(payload);
                }
            }
        }
    }

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
        };
        pub(crate) use std::sync::atomic::Ordering;
    }

    pub(crate) mod cell {
        pub(crate) use loom::cell::UnsafeCell;
    }

    macro_rules! global {
        ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
            loom::lazy_static! {
                $(#[$attr])*
                static ref $name: $ty = $init;
            }
        };
    }
    pub(crate) use global;

    /// loom's mutex in parking_lot's shape: `lock` cannot fail (no poisoning).
    ///
    /// loom's `Mutex` holds a `std::sync::Mutex`, which poisons when a guard taken while the OS thread was not
    /// panicking is released while it is (and loom then unwraps that poison). All loom threads share one OS
    /// thread, hence one panic count: while one loom thread is preempted in the middle of an unwind (a dropped
    /// coroutine's forced unwind), `std::thread::panicking()` is true in all of them. So a guard taken before
    /// such an unwind is released only once no unwind is under way ([`MutexGuard::settle`]), as parking_lot
    /// would not have poisoned anything.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// Guard of [`Mutex`]. Invariant: `inner` is `Some` except inside [`Condvar::wait`]; `taken_panicking`
    /// says whether the OS thread was panicking when the lock was (last) taken.
    pub(crate) struct MutexGuard<'a, T> {
        inner: Option<loom::sync::MutexGuard<'a, T>>,
        taken_panicking: bool,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Read after the lock, as std's poison flag was: no loom operation comes between.
            MutexGuard {
                inner: Some(inner),
                taken_panicking: std::thread::panicking(),
            }
        }
    }

    impl<T> MutexGuard<'_, T> {
        /// Before the lock is released: if another loom thread's unwind is under way now but was not when the
        /// lock was taken, lets the other threads run until it is over, so that the release does not poison
        /// loom's inner std mutex. (cothread holds no lock of the shim across code that can panic, so an unwind
        /// seen here is never this thread's own.)
        fn settle(&self) {
            if !self.taken_panicking {
                while std::thread::panicking() {
                    loom::thread::yield_now();
                }
            }
        }
    }

    impl<T> Drop for MutexGuard<'_, T> {
        fn drop(&mut self) {
            if self.inner.is_some() {
                self.settle();
            }
        }
    }

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.inner
                .as_ref()
                .expect("guard present outside Condvar::wait")
        }
    }
    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.inner
                .as_mut()
                .expect("guard present outside Condvar::wait")
        }
    }

    /// loom's condition variable in parking_lot's shape: `wait` takes the guard by `&mut`.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            guard.settle();
            let inner = guard.inner.take().expect("guard present before wait");
            let inner = self.0.wait(inner).unwrap_or_else(|e| e.into_inner());
            guard.taken_panicking = std::thread::panicking();
            guard.inner = Some(inner);
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) use super::loom_channel as channel;
}

#[cfg(loom)]
pub(crate) mod loom_channel;

pub(crate) use imp::*;

/// `std::sync::Arc` in every build, loom's included: what must become a trait object (`StdArc<dyn Trait>`),
/// which loom's `Arc` cannot, uses it. loom then does not model its reference count.
pub(crate) use std::sync::{Arc as StdArc, Weak as StdWeak};
