//! Measures the Redis event log: appends/s one stream key sustains with pipelined batches of
//! 1, 10 and 100 events (one round trip per batch, one connection), and XADD → tailer latency
//! (p50/p99) at a fixed publish rate, measured from the schedule.
//!
//! Needs a running Redis it may write to (it uses and deletes its own key):
//!   redis-server --port 6390 --save '' --appendonly no --daemonize no &
//!   cargo run --release --example cluster_log_bench -- redis://127.0.0.1:6390 [SECS] [RATE]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pushcore::bus::NewEvent;
use pushcore::cluster::bridge::{spawn_tailer, Floor};
use pushcore::cluster::log::{Appended, RedisLog};
use pushcore::cluster::{ClusterConfig, TailEvent};
use pushcore::sse::id::EventId;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6390".into());
    let secs: u64 = args.next().map_or(Ok(3), |s| s.parse())?;
    let rate: u64 = args.next().map_or(Ok(1000), |s| s.parse())?;
    let config = ClusterConfig {
        redis_url: Some(url),
        redis_stream: "pushcore:bench".into(),
        ..ClusterConfig::default()
    };
    let settings = config.validate()?.ok_or("no --redis-url")?;
    let mut log = RedisLog::new(&settings)?;
    log.connect(Duration::from_secs(2))?;
    let event = NewEvent {
        channels: vec!["bench".into()],
        event_type: "update".into(),
        data: r#"{"price":123.45,"symbol":"ABC","seq":0}"#.into(),
    };

    println!(
        "appends/s, one key, MAXLEN ~ {}, {secs} s each:",
        settings.maxlen
    );
    for batch in [1usize, 10, 100] {
        reset(&mut log)?;
        let events = vec![event.clone(); batch];
        let started = Instant::now();
        let mut appended = 0u64;
        while started.elapsed() < Duration::from_secs(secs) {
            match log.append(&events, Duration::from_secs(2))? {
                Appended::Stored(ids) => appended += ids.len() as u64,
                Appended::NoStream => return Err("stream vanished".into()),
            }
        }
        let per_sec = appended as f64 / started.elapsed().as_secs_f64();
        println!("  batch {batch:>3}: {per_sec:>9.0} events/s");
    }

    reset(&mut log)?;
    let received: Arc<Mutex<Vec<(EventId, Instant)>>> = Arc::default();
    let sink_received = Arc::clone(&received);
    let (ready_tx, ready_rx) = crossbeam::channel::bounded(1);
    let sink = Box::new(move |e: TailEvent| match e {
        TailEvent::Events(batch) => {
            let now = Instant::now();
            if let Ok(mut r) = sink_received.lock() {
                r.extend(batch.iter().map(|x| (x.id, now)));
            }
        }
        TailEvent::Ready { .. } => {
            let _ = ready_tx.send(());
        }
        _ => {}
    });
    let tailer = spawn_tailer(&settings, EventId::ZERO, Arc::new(Floor::default()), sink)?;
    ready_rx.recv_timeout(Duration::from_secs(5))?;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let total = rate * secs;
    let mut scheduled = Vec::with_capacity(total as usize);
    let start = Instant::now() + Duration::from_millis(50);
    for i in 0..total {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Appended::Stored(ids) = log.append([&event], Duration::from_secs(2))? {
            scheduled.extend(ids.into_iter().map(|id| (id, due)));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    tailer.stop();
    let received = received.lock().map_err(|_| "lock")?.clone();
    let by_id: std::collections::HashMap<EventId, Instant> = received.into_iter().collect();
    let mut lat: Vec<Duration> = scheduled
        .iter()
        .filter_map(|(id, due)| by_id.get(id).map(|at| at.saturating_duration_since(*due)))
        .collect();
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "XADD -> tailer latency at {rate}/s ({} of {} received), from the schedule: p50 {:?} p99 {:?} max {:?}",
        lat.len(),
        scheduled.len(),
        pick(0.5),
        pick(0.99),
        lat.last().copied().unwrap_or_default()
    );
    reset(&mut log)?;
    Ok(())
}

/// Deletes the bench key and creates it again (the log needs the stream to exist).
fn reset(log: &mut RedisLog) -> Res<()> {
    log.delete_stream()?;
    log.recreate_above(EventId::ZERO, "bench")?;
    Ok(())
}
