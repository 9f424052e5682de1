//! The invariant checker can fail: each test breaks one invariant on purpose, without cothread, and
//! expects the checker (or loom through it) to report it. Without these, a passing model would not show that
//! its checks were able to fire.
#![cfg(loom)]

// Each test file uses its own part of the shared code.
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Chain, check};
use loom::sync::atomic::AtomicBool;
use loom::thread;

/// Two threads that both take control with nothing ordering them: in some schedule they overlap, and
/// `begin` reports it.
#[test]
#[should_panic(expected = "two threads of one caller chain run at once")]
fn overlapping_runners_are_reported() {
    check("overlapping_runners_are_reported", None, || {
        let chain = Chain::new();
        chain.end();
        let c = chain.clone();
        let other = thread::spawn(move || {
            c.begin();
            c.end();
        });
        chain.begin();
        chain.end();
        other.join().unwrap();
    });
}

/// A hand-off through a relaxed flag orders nothing: the next runner's access to the log races with the
/// previous runner's, and loom's `UnsafeCell` reports it.
#[test]
#[should_panic(expected = "Causality violation")]
fn a_hand_off_that_orders_nothing_is_reported() {
    check("a_hand_off_that_orders_nothing_is_reported", None, || {
        let chain = Chain::new();
        let handed = std::sync::Arc::new(AtomicBool::new(false));
        chain.end();
        let (c, h) = (chain.clone(), handed.clone());
        let other = thread::spawn(move || {
            c.begin();
            c.log("other");
            c.end();
            h.store(true, loom::sync::atomic::Ordering::Relaxed);
        });
        while !handed.load(loom::sync::atomic::Ordering::Relaxed) {
            thread::yield_now();
        }
        chain.begin();
        chain.log("main");
        chain.end();
        other.join().unwrap();
    });
}

/// A value handed over twice without being taken is reported (a hand-off seen twice, or one lost).
#[test]
#[should_panic(expected = "a value handed over before was never taken")]
fn a_value_never_taken_is_reported() {
    check("a_value_never_taken_is_reported", None, || {
        let chain = Chain::new();
        chain.put(1);
        chain.put(2);
    });
}

/// The same checks pass when the hand-off is a proper release/acquire pair, so the failures above come from
/// the missing order, not from the checker.
#[test]
fn an_ordered_hand_off_passes() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    check("an_ordered_hand_off_passes", None, || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let chain = Chain::new();
        let handed = std::sync::Arc::new(AtomicBool::new(false));
        chain.end();
        let (c, h) = (chain.clone(), handed.clone());
        let other = thread::spawn(move || {
            c.begin();
            c.log("other");
            c.put(7);
            c.end();
            h.store(true, loom::sync::atomic::Ordering::Release);
        });
        while !handed.load(loom::sync::atomic::Ordering::Acquire) {
            thread::yield_now();
        }
        chain.begin();
        assert_eq!(chain.take(), Some(7));
        chain.log("main");
        assert_eq!(chain.events(), ["other", "main"]);
        chain.end();
        other.join().unwrap();
    });
    assert!(
        RUNS.load(Ordering::Relaxed) > 1,
        "loom explored one schedule only"
    );
}
