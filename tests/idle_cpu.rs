//! Waiting costs no CPU beyond the spin bound: suspended coroutines park, and an enterer whose coroutine runs
//! for long spins at most the bound and then parks. Reads the process's CPU time from `/proc/self/stat`
//! (Linux); elsewhere, and under Miri (no `/proc`, no real time), these tests are compiled out.
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::time::Duration;

use cothread::{Backend, Coroutine, Resume, yield_now};

use common::{SpawnOn, coroutine};

on_each_backend!(
    suspended_coroutines_cost_no_cpu,
    an_enterer_does_not_spin_while_its_coroutine_runs_long,
    a_loop_waiting_for_a_socket_sleeps_in_its_poll,
);

/// User + system CPU time of this process, from `/proc/self/stat` (fields 14 and 15, in clock ticks of
/// 10 ms on Linux with the usual USER_HZ of 100).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')').expect("')' in stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// 5% of one core over one second.
const BUDGET: Duration = Duration::from_millis(50);

/// The cases measure the whole process's CPU time, so they run one at a time: another case's set-up or
/// clean-up (spawning or finishing 100 coroutine threads) inside a window would be charged to it. (CI once
/// failed two cases at once that way.)
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn suspended_coroutines_cost_no_cpu(backend: Backend) {
    let _serial = one_at_a_time();
    let mut cos: Vec<Coroutine> = (0..100).map(|_| coroutine(backend, yield_now)).collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    // Let every waiter finish its bounded spin and park.
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time() - before;
    assert!(
        used < BUDGET,
        "100 suspended coroutines used {used:?} of CPU in 1 s"
    );
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Returned(()));
    }
}

fn an_enterer_does_not_spin_while_its_coroutine_runs_long(backend: Backend) {
    let _serial = one_at_a_time();
    let mut co = coroutine(backend, move || std::thread::sleep(Duration::from_secs(1)));
    let before = cpu_time();
    assert_eq!(co.enter(), Resume::Returned(()));
    let used = cpu_time() - before;
    assert!(
        used < BUDGET,
        "waiting 1 s for a coroutine used {used:?} of CPU"
    );
}

fn a_loop_waiting_for_a_socket_sleeps_in_its_poll(backend: Backend) {
    let _serial = one_at_a_time();
    use cothread::RunLoop;
    use cothread::net::TcpListener;
    use std::io::Read;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut rl = RunLoop::new();
    let got = rl.spawn_on(backend, move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut byte = [0; 1];
        conn.read_exact(&mut byte).expect("read");
        byte[0]
    });
    let client = std::thread::spawn(move || {
        use std::io::Write;
        // Let the loop's task reach its wait and the loop go to sleep in the poll.
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_time() - before;
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(&[42]).expect("write");
        used
    });
    rl.run();
    let used = client.join().unwrap();
    assert_eq!(got.take(), Some(42));
    assert!(
        used < BUDGET,
        "a loop waiting for a connection used {used:?} of CPU in 1 s"
    );
}
