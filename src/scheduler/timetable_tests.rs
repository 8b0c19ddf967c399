//! Tests of the one schedule (`timetable.rs`).

use super::*;
use crate::check::ProbeConfig;
use crate::model::{Group, Level};

/// A critical tcp check of `port` on loopback, probed every `interval`.
fn tcp(name: &str, port: u16, interval: Duration) -> Arc<CheckConfig> {
    let probe: ProbeConfig = toml::from_str(&format!(
        "kind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}"
    ))
    .unwrap();
    Arc::new(CheckConfig {
        name: name.into(),
        interval,
        timeout: Duration::from_secs(2),
        critical: true,
        groups: vec![Group::Readiness],
        failure_threshold: 1,
        success_threshold: 1,
        degraded_after: None,
        depends_on: Vec::new(),
        resilience: Default::default(),
        slo: None,
        probe,
    })
}

async fn next_observation(events: &mut mpsc::Receiver<Event>) -> Observation {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(Event::Observation(o))) => return o,
            Ok(Some(_)) => continue,
            other => panic!("no observation: {}", other.is_ok()),
        }
    }
}

/// Between runs a check is its slot and one heap entry: 100,000 checks hold 100,000
/// of these, not 100,000 sleeping tasks with their futures.
#[test]
fn a_waiting_check_stays_small() {
    assert!(std::mem::size_of::<Probe>() <= 16);
    let slot = std::mem::size_of::<Slot>();
    assert!(slot <= 256, "a waiting check takes {slot} bytes");
}

/// Due times fall on a grid shared by every check: runs meant for 100 random moments of a
/// second (checks every second) come due on at most 21 distinct wake-ups (a grain of 50
/// ms), never before their slot and less than a grain after it; a 10 ms interval is below
/// the timer and kept exact; with many checks the grain shrinks.
#[test]
fn due_times_gather_on_a_shared_grid() {
    let t = Table {
        slots: Vec::new(),
        free: Vec::new(),
        due: BinaryHeap::new(),
        wake_at: None,
        origin: Instant::now(),
    };
    let second = Duration::from_secs(1);
    let slots: Vec<Instant> = (0..100).map(|_| t.origin + random_below(second)).collect();
    let dues: Vec<Instant> = slots.iter().map(|s| t.on_grid(*s, second)).collect();
    let distinct: std::collections::BTreeSet<&Instant> = dues.iter().collect();
    assert!(
        distinct.len() <= 21,
        "{} wake-ups for 100 checks",
        distinct.len()
    );
    for (slot, due) in slots.iter().zip(&dues) {
        assert!(*due >= *slot && *due < *slot + Duration::from_millis(50));
        assert_eq!((*due - t.origin).as_nanos() % 50_000_000, 0);
    }
    let exact = t.origin + Duration::from_micros(1234);
    assert_eq!(t.on_grid(exact, Duration::from_millis(10)), exact);
    // 10,000 checks every 10 s: a grain of 8 ms, about 8 runs a wake-up, not 50.
    let many = Table {
        slots: (0..10_000).map(|_| Slot::Free).collect(),
        ..t
    };
    let at = many.origin + Duration::from_millis(1);
    let ten = Duration::from_secs(10);
    assert_eq!(
        many.on_grid(at, ten) - many.origin,
        Duration::from_millis(8)
    );
}

/// Checks run on their own intervals from one schedule; a reload keeps an unchanged
/// check's definition (same generation), restarts a changed one and stops a removed one.
#[tokio::test]
async fn one_schedule_runs_every_check_and_follows_a_reload() {
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = up.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        loop {
            let _ = up.accept().await;
        }
    });
    let (tx, mut events) = mpsc::channel(64);
    let (commands, receiver) = mpsc::channel(4);
    let driver = tokio::spawn(Timetable::new(tx, CancellationToken::new(), 8).drive(receiver));
    let ms = Duration::from_millis;
    let apply = |checks: Vec<Arc<CheckConfig>>| {
        let commands = commands.clone();
        async move {
            let (done, applied) = oneshot::channel();
            commands.send(Command::Apply(checks, done)).await.unwrap();
            applied.await.unwrap();
        }
    };
    apply(vec![tcp("a", port, ms(100)), tcp("b", port, ms(100))]).await;
    let Some(Event::Reconfigure(metas)) = events.recv().await else {
        panic!("the new set comes first")
    };
    let generation_of =
        |metas: &[CheckMeta], n: &str| metas.iter().find(|m| m.name == n).map(|m| m.generation);
    let (a1, b1) = (generation_of(&metas, "a"), generation_of(&metas, "b"));
    let mut seen = std::collections::HashMap::<String, usize>::new();
    while seen.len() < 2 || seen.values().any(|n| *n < 3) {
        let o = next_observation(&mut events).await;
        assert_eq!(o.outcome.level, Level::Ok, "{}", o.outcome.message);
        *seen.entry(o.check).or_default() += 1;
    }
    // "a" unchanged, "b" removed, "c" new.
    apply(vec![tcp("a", port, ms(100)), tcp("c", port, ms(100))]).await;
    let metas = loop {
        match events.recv().await {
            Some(Event::Reconfigure(m)) => break m,
            Some(_) => continue,
            None => panic!("closed"),
        }
    };
    assert_eq!(generation_of(&metas, "a"), a1);
    assert_eq!(generation_of(&metas, "b"), None);
    let c1 = generation_of(&metas, "c");
    assert!(c1 > b1);
    let mut after = std::collections::HashMap::<String, usize>::new();
    while after.len() < 2 || after.values().any(|n| *n < 3) {
        let o = next_observation(&mut events).await;
        assert_ne!(o.check, "b", "a removed check still runs");
        *after.entry(o.check).or_default() += 1;
    }
    commands.send(Command::Stop(ms(500))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), driver)
        .await
        .unwrap()
        .unwrap();
    accept.abort();
}

/// A run in flight when its check is removed is aborted: its result never arrives.
#[tokio::test]
async fn a_removed_check_in_flight_never_reports() {
    // Accepted but never answered, so an `expect` run waits until aborted.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            kept.push(s);
        }
    });
    let mut waiting = (*tcp("slow", port, Duration::from_millis(50))).clone();
    waiting.probe = toml::from_str(&format!(
        "kind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nexpect = \"never\""
    ))
    .unwrap();
    let (tx, mut events) = mpsc::channel(64);
    let (commands, receiver) = mpsc::channel(4);
    let driver = tokio::spawn(Timetable::new(tx, CancellationToken::new(), 8).drive(receiver));
    let (done, applied) = oneshot::channel();
    let checks = vec![Arc::new(waiting)];
    commands.send(Command::Apply(checks, done)).await.unwrap();
    applied.await.unwrap();
    // The first run starts within FIRST_RUN_SPREAD and then waits on the silent peer.
    tokio::time::sleep(FIRST_RUN_SPREAD + Duration::from_millis(100)).await;
    let (done, applied) = oneshot::channel();
    commands
        .send(Command::Apply(Vec::new(), done))
        .await
        .unwrap();
    applied.await.unwrap();
    // Longer than the 2 s timeout: an unaborted run would have reported by then.
    let late = tokio::time::timeout(Duration::from_millis(2500), async {
        loop {
            match events.recv().await {
                Some(Event::Observation(o)) => return Some(o),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert!(late.is_err(), "a removed check reported: {late:?}");
    commands.send(Command::Stop(Duration::ZERO)).await.unwrap();
    driver.await.unwrap();
    hold.abort();
}
