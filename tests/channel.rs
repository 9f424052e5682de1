//! Channels: delivery without loss or duplication, capacity and rendezvous, disconnection and its errors,
//! threads outside coroutines, misuse.

mod common;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use cothread::channel::{self, RecvError, SendError, TryRecvError, TrySendError};
use cothread::runloop::yield_to_loop;
use cothread::{Backend, RunLoop};

use common::{SpawnOn, coroutine, message};

on_each_backend!(
    one_producer_one_consumer_keeps_order,
    a_rendezvous_send_completes_only_when_received,
    a_bounded_channel_makes_senders_wait_when_full,
    try_operations_on_a_rendezvous_channel_need_a_waiting_partner,
    waiters_are_released_by_disconnection,
    a_message_handed_to_a_receiver_that_is_dropped_unrun_is_not_lost,
    threads_outside_coroutines_block_and_feed_a_loop,
    waiting_in_a_coroutine_not_on_a_loop_panics,
    messages_through_8_producers_and_8_consumers_are_neither_lost_nor_duplicated,
    the_multiset_holds_for_rendezvous_and_unbounded_channels,
);

/// `producers` coroutines send `total` distinct messages through one channel to `consumers` coroutines; the
/// multiset received equals the multiset sent.
fn multiset_round_trip(
    backend: Backend,
    capacity: Option<usize>,
    producers: u64,
    consumers: usize,
    total: u64,
) {
    let (tx, rx) = match capacity {
        Some(n) => channel::bounded(n),
        None => channel::unbounded(),
    };
    let mut rl = RunLoop::new();
    for p in 0..producers {
        let tx = tx.clone();
        rl.spawn_on(backend, move || {
            let mut i = p;
            while i < total {
                tx.send(i).unwrap();
                i += producers;
            }
        });
    }
    drop(tx);
    let results: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            rl.spawn_on(backend, move || rx.iter().collect::<Vec<u64>>())
        })
        .collect();
    drop(rx);
    rl.run();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut busy = 0;
    for r in &results {
        let got = r.take().unwrap();
        busy += usize::from(!got.is_empty());
        for v in got {
            *seen.entry(v).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u64, total, "every message arrived");
    assert!(seen.values().all(|&n| n == 1), "no message arrived twice");
    assert!(seen.keys().all(|&v| v < total));
    if capacity.is_some() {
        assert!(busy > 1, "bounded: the work spread over consumers");
    }
}

fn messages_through_8_producers_and_8_consumers_are_neither_lost_nor_duplicated(backend: Backend) {
    let total = if cfg!(miri) { 200 } else { 100_000 };
    multiset_round_trip(backend, Some(16), 8, 8, total);
}

fn the_multiset_holds_for_rendezvous_and_unbounded_channels(backend: Backend) {
    let total = if cfg!(miri) { 60 } else { 5_000 };
    multiset_round_trip(backend, Some(0), 3, 4, total);
    multiset_round_trip(backend, None, 4, 3, total);
    multiset_round_trip(backend, Some(1), 2, 2, total);
}

fn one_producer_one_consumer_keeps_order(backend: Backend) {
    let n = if cfg!(miri) { 50 } else { 2_000 };
    for cap in [Some(0), Some(1), Some(7), None] {
        let (tx, rx) = match cap {
            Some(c) => channel::bounded(c),
            None => channel::unbounded(),
        };
        let mut rl = RunLoop::new();
        rl.spawn_on(backend, move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        });
        let got = rl.spawn_on(backend, move || rx.into_iter().collect::<Vec<u32>>());
        rl.run();
        assert_eq!(got.take().unwrap(), (0..n).collect::<Vec<_>>(), "{cap:?}");
    }
}

fn a_rendezvous_send_completes_only_when_received(backend: Backend) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel::bounded(0);
    let mut rl = RunLoop::new();
    let l = log.clone();
    rl.spawn_on(backend, move || {
        l.lock().unwrap().push("send starts");
        tx.send(1).unwrap();
        l.lock().unwrap().push("send done");
    });
    let l = log.clone();
    rl.spawn_on(backend, move || {
        l.lock().unwrap().push("receiver idles");
        yield_to_loop();
        l.lock().unwrap().push("receiver receives");
        assert_eq!(rx.recv(), Ok(1));
    });
    rl.run();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "send starts",
            "receiver idles",
            "receiver receives",
            "send done"
        ]
    );
}

fn a_bounded_channel_makes_senders_wait_when_full(backend: Backend) {
    let (tx, rx) = channel::bounded(2);
    assert_eq!(tx.capacity(), Some(2));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(tx.len(), 2);
    let mut rl = RunLoop::new();
    let sender = rl.spawn_on(backend, move || {
        tx.send(3).unwrap(); // waits for room
        tx
    });
    assert_eq!(rl.run_until_stalled(), 1, "the sender waits");
    assert_eq!(rx.try_recv(), Ok(1)); // makes room: the waiting message moves in
    assert_eq!(rx.len(), 2);
    assert_eq!(rl.run_until_stalled(), 0);
    let tx = sender.take().unwrap();
    drop(tx);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

fn try_operations_on_a_rendezvous_channel_need_a_waiting_partner(backend: Backend) {
    let (tx, rx) = channel::bounded(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut rl = RunLoop::new();
    let rx2 = rx.clone();
    let got = rl.spawn_on(backend, move || rx2.recv());
    assert_eq!(rl.run_until_stalled(), 1);
    assert_eq!(tx.try_send(5), Ok(()), "a receiver waits");
    rl.run();
    assert_eq!(got.take(), Some(Ok(5)));
    let tx2 = tx.clone();
    rl.spawn_on(backend, move || tx2.send(6).unwrap());
    assert_eq!(rl.run_until_stalled(), 1);
    assert_eq!(rx.try_recv(), Ok(6), "a sender waits");
    rl.run();
}

#[test]
fn receivers_drain_then_see_the_disconnection() {
    let (tx, rx) = channel::unbounded();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn sending_to_a_dropped_receiver_gives_the_value_back() {
    let (tx, rx) = channel::bounded(1);
    drop(rx);
    let err = tx.send(String::from("kept")).unwrap_err();
    assert_eq!(err, SendError(String::from("kept")));
    assert_eq!(err.into_inner(), "kept");
    assert!(tx.try_send(String::new()).unwrap_err().is_disconnected());
}

fn waiters_are_released_by_disconnection(backend: Backend) {
    let mut rl = RunLoop::new();
    // A sender waiting on a full channel gets its value back when the receivers go.
    let (tx, rx) = channel::bounded(0);
    let sender = rl.spawn_on(backend, move || tx.send(vec![1, 2, 3]));
    // A receiver waiting on an empty channel gets RecvError when the senders go.
    let (tx2, rx2) = channel::bounded::<u8>(4);
    let receiver = rl.spawn_on(backend, move || rx2.recv());
    assert_eq!(rl.run_until_stalled(), 2);
    drop(rx);
    drop(tx2);
    rl.run();
    assert_eq!(sender.take(), Some(Err(SendError(vec![1, 2, 3]))));
    assert_eq!(receiver.take(), Some(Err(RecvError)));
}

#[test]
fn dropping_the_last_receiver_drops_queued_messages() {
    let token = Arc::new(());
    let (tx, rx) = channel::bounded(4);
    tx.send(token.clone()).unwrap();
    tx.send(token.clone()).unwrap();
    assert_eq!(Arc::strong_count(&token), 3);
    let rx2 = rx.clone();
    drop(rx);
    assert_eq!(Arc::strong_count(&token), 3, "a receiver is left");
    drop(rx2);
    assert_eq!(Arc::strong_count(&token), 1);
}

fn a_message_handed_to_a_receiver_that_is_dropped_unrun_is_not_lost(backend: Backend) {
    let (tx, rx) = channel::bounded(0);
    let mut rl = RunLoop::new();
    let rx1 = rx.clone();
    rl.spawn_on(backend, move || rx1.recv());
    assert_eq!(rl.run_until_stalled(), 1);
    tx.try_send(42).unwrap(); // handed to the waiting task, which does not run
    drop(rl);
    assert_eq!(
        rx.try_recv(),
        Ok(42),
        "the message went back to the channel"
    );
}

fn threads_outside_coroutines_block_and_feed_a_loop(backend: Backend) {
    let n = if cfg!(miri) { 20 } else { 1_000 };
    let (to_loop, from_thread) = channel::bounded(1);
    let (to_thread, from_loop) = channel::bounded(0);
    let mut rl = RunLoop::new();
    rl.spawn_on(backend, move || {
        for v in from_thread {
            to_thread.send(v * 2).unwrap();
        }
    });
    let keep = rl.keep_alive();
    let thread = std::thread::spawn(move || {
        let feeder = std::thread::spawn(move || {
            for i in 0..n {
                to_loop.send(i).unwrap(); // blocks the thread while full
            }
        });
        let sum: u64 = from_loop.iter().sum(); // blocks the thread while empty
        feeder.join().unwrap();
        drop(keep);
        sum
    });
    rl.run();
    assert_eq!(thread.join().unwrap(), (0..n).map(|i| i * 2).sum::<u64>());
}

fn waiting_in_a_coroutine_not_on_a_loop_panics(backend: Backend) {
    let (_tx, rx) = channel::bounded::<u8>(1);
    let mut free = coroutine(backend, move || {
        let err = catch_unwind(AssertUnwindSafe(|| rx.recv())).unwrap_err();
        message(err)
    });
    let msg = free.enter().into_returned().unwrap();
    assert!(
        msg.contains(
            "Receiver::recv() has to wait, in a coroutine that was not spawned on a RunLoop"
        ),
        "{msg}"
    );
    // Not waiting is fine anywhere.
    let (tx, rx) = channel::bounded(1);
    let mut free = coroutine(backend, move || {
        tx.send(1).unwrap();
        rx.recv()
    });
    assert_eq!(free.enter().into_returned(), Some(Ok(1)));
}

#[test]
fn errors_read_like_crossbeams() {
    assert_eq!(
        SendError(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(format!("{:?}", SendError(1)), "SendError { .. }");
    assert_eq!(
        TrySendError::Full(1).to_string(),
        "sending on a full channel"
    );
    assert!(TrySendError::Full(1).is_full());
    assert_eq!(TrySendError::Disconnected(7).into_inner(), 7);
    assert_eq!(
        RecvError.to_string(),
        "receiving on an empty and disconnected channel"
    );
    assert!(TryRecvError::Empty.is_empty());
    assert!(TryRecvError::from(RecvError).is_disconnected());
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: E) {}
    is_error(SendError(1));
    is_error(TrySendError::Full(1));
    is_error(RecvError);
    is_error(TryRecvError::Empty);
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn endpoints_are_send_and_sync() {
    assert_send_sync::<channel::Sender<String>>();
    assert_send_sync::<channel::Receiver<String>>();
}

/// Both backends on one loop: producers on the thread backend, consumers native. (Not under Miri, which
/// cannot run the native backend's stack switch.)
#[cfg(all(cothread_native, not(miri)))]
#[test]
fn thread_and_native_tasks_share_a_loop() {
    use cothread::Builder;
    let total = 20_000u64;
    let (tx, rx) = channel::bounded(3);
    let mut rl = RunLoop::new();
    for p in 0..4 {
        let tx = tx.clone();
        rl.spawn_with(Builder::new().backend(Backend::Thread), move || {
            for i in (p..total).step_by(4) {
                tx.send(i).unwrap();
            }
        })
        .unwrap();
    }
    drop(tx);
    let sums: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            rl.spawn_with(Builder::new().backend(Backend::Native), move || {
                rx.iter().sum::<u64>()
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    rl.run();
    let sum: u64 = sums.iter().map(|s| s.take().unwrap()).sum();
    assert_eq!(sum, total * (total - 1) / 2);
}
