//! What a canary's 24 h status history costs in heap, measured with a counting allocator:
//! `cargo run -p wsmon-probe --example history_cost` (heap sizes do not depend on the build profile) (figures in BENCHMARKS.md).
//!
//! Builds 100 histories, drives each through 25 hours of minutes (10 messages and freshness
//! samples per minute, a failure and two state changes every 10 minutes, with 160-character
//! details), and reports the live heap per canary beside an empty canary recorder's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsmon_probe::failure::FailureReason;
use wsmon_probe::measure::Retention;
use wsmon_probe::record::history::History;
use wsmon_probe::record::recorder::CanaryRecorder;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CANARIES: usize = 100;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let before = live();
    let recorders: Vec<CanaryRecorder> = (0..CANARIES)
        .map(|i| CanaryRecorder::new(&format!("canary-{i}"), String::new(), Retention::Recent))
        .collect();
    let recorder_bytes = (live() - before) as f64 / CANARIES as f64;

    let detail = "x".repeat(160);
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_040);
    let before = live();
    let mut histories: Vec<History> = (0..CANARIES).map(|_| History::new()).collect();
    for h in &mut histories {
        for minute in 0..25 * 60u64 {
            let t0 = start + Duration::from_secs(minute * 60);
            for i in 0..10 {
                let t = t0 + Duration::from_secs(i * 6);
                h.message(t);
                h.freshness(t, 0.002 + i as f64 * 1e-3);
            }
            if minute % 10 == 0 {
                h.failure(t0, FailureReason::Stall, &detail);
                h.closed(1006, &detail);
                h.state_change(t0, "up", "backoff", false);
                h.state_change(t0 + Duration::from_secs(1), "backoff", "up", true);
            }
        }
        h.roll(start + Duration::from_secs(25 * 3600));
    }
    let history_bytes = (live() - before) as f64 / CANARIES as f64;
    let _ = SystemTime::now();
    println!("canaries                         {CANARIES}");
    println!("empty recorder per canary        {:.0} B", recorder_bytes);
    println!(
        "full 24 h history per canary     {:.0} B ({:.1} KiB)",
        history_bytes,
        history_bytes / 1024.0
    );
    drop((recorders, histories));
}
