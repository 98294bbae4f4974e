//! The reconnect herd: a server dies under many connected clients that reconnect with
//! `wsmon::backoff`, comes back after a fixed downtime, and records when each reconnect
//! arrives.
//!
//! The server is back before any client's first attempt could reach it (`downtime` is
//! shorter than `initial`), as when a supervisor restarts a crashed process at once; the
//! herd is then purely the clients' timing.
//!
//! Each successful reconnect is timed twice, from the moment that client noticed the loss:
//! - `scheduled`: when its backoff timer was due, the moment its SYN would leave a machine of
//!   its own;
//! - `observed`: when this process actually got round to starting the attempt.
//!
//! In a release build on an idle machine the two agree to a few milliseconds. In one
//! unoptimised process on a busy 2-core machine, 2,000 clients' timers fire late (hundreds of
//! milliseconds under a load average of 8), so `observed` measures the machine, and the
//! test's assertions use `scheduled`. Timing the server's `accept` would be worse still: it
//! measures how fast this process gets through 4,000 handshakes, not when the clients came.
//! Whether each attempt found the server up, and so which attempt succeeded, is real either
//! way. The server dies by shutting every socket down in one sweep, as a crashing process's
//! sockets are closed by the kernel at once. Shared by `tests/reconnect_herd.rs` (which asserts) and
//! `examples/reconnect_herd.rs` (which prints the figures for BENCHMARKS.md).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsmon::backoff::{Backoff, Jitter};

#[derive(Debug, Clone, Copy)]
pub struct HerdConfig {
    pub clients: usize,
    pub jitter: Jitter,
    pub initial: Duration,
    pub max: Duration,
    /// How long the server stays dead before a new one listens on the same port.
    pub downtime: Duration,
    pub bucket: Duration,
    /// From the death, when the restarted server starts answering upgrades.
    pub answer_after: Duration,
    /// Seeds each client's backoff (client `i` uses `seed + i`), so runs repeat.
    pub seed: u64,
}

impl HerdConfig {
    /// The configuration BENCHMARKS.md reports.
    pub fn standard(jitter: Jitter) -> Self {
        Self {
            clients: 2000,
            jitter,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            downtime: Duration::from_millis(300),
            bucket: Duration::from_millis(100),
            answer_after: Duration::from_secs(5),
            seed: 0x4e7d,
        }
    }
}

/// Reconnects per bucket, and the busiest window.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub buckets: Vec<usize>,
    /// The most reconnects in any one bucket-long window (not aligned to buckets).
    pub peak_window: usize,
}

impl Histogram {
    fn of(mut times: Vec<Duration>, bucket: Duration) -> Self {
        times.sort();
        let mut buckets = Vec::new();
        for t in &times {
            let b = (t.as_nanos() / bucket.as_nanos()) as usize;
            if buckets.len() <= b {
                buckets.resize(b + 1, 0);
            }
            buckets[b] += 1;
        }
        let (mut peak_window, mut start) = (0, 0);
        for end in 0..times.len() {
            while times[end] - times[start] >= bucket {
                start += 1;
            }
            peak_window = peak_window.max(end - start + 1);
        }
        Self {
            buckets,
            peak_window,
        }
    }

    pub fn peak_bucket(&self) -> usize {
        self.buckets.iter().copied().max().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct HerdReport {
    pub config: HerdConfig,
    /// Successful reconnects by when their backoff timer was due, from each client's loss.
    pub scheduled: Histogram,
    /// The same reconnects by when this process started them.
    pub observed: Histogram,
    /// How late the timers fired: median and worst.
    pub late_median: Duration,
    pub late_max: Duration,
    /// First to last client noticing the loss.
    pub loss_spread: Duration,
    pub reconnected: usize,
    /// Connect attempts refused while the server was down.
    pub refused_attempts: usize,
}

impl HerdReport {
    /// The time by which every client was back (scheduled).
    pub fn all_back_after(&self) -> Duration {
        self.config.bucket * self.scheduled.buckets.len() as u32
    }
}

/// Makes sure this process may hold `needed` descriptors, raising the soft limit up to the
/// hard one if it is lower.
pub fn ensure_open_files(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < needed && limit.rlim_max > limit.rlim_cur {
            limit.rlim_cur = limit.rlim_max.min(needed.max(limit.rlim_cur));
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= needed,
        "the herd needs {needed} open files; RLIMIT_NOFILE allows {} (hard {})",
        limit.rlim_cur,
        limit.rlim_max
    );
}

/// A listener with a backlog deep enough for the whole herd, so the kernel's accept queue
/// (not the clients' timing) is never what spreads or drops the reconnects.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// One incarnation of the server: accepts WebSocket upgrades and holds them until killed.
struct Server {
    /// Stops the accept loop.
    kill: CancellationToken,
    /// Ends the connection tasks; only after the measurement, so their wake-ups do not
    /// compete with the clients'.
    release: CancellationToken,
    tasks: TaskTracker,
    /// A duplicate of every accepted socket, to shut them all down in one sweep.
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

/// `answer_from`: upgrades are answered only from then on (see [`run`]).
fn serve(listener: TcpListener, answer_from: Option<Instant>) -> Server {
    let kill = CancellationToken::new();
    let release = CancellationToken::new();
    let tasks = TaskTracker::new();
    let sockets = Arc::new(Mutex::new(Vec::new()));
    let (k, t, all, r) = (
        kill.clone(),
        tasks.clone(),
        sockets.clone(),
        release.clone(),
    );
    tasks.spawn(async move {
        loop {
            let tcp = tokio::select! {
                r = listener.accept() => match r { Ok((tcp, _)) => tcp, Err(_) => continue },
                () = k.cancelled() => return,
            };
            let Ok(tcp) = hold_duplicate(tcp, &all) else {
                continue;
            };
            let r = r.clone();
            t.spawn(async move {
                if let Some(at) = answer_from {
                    tokio::time::sleep_until(at.into()).await;
                }
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                // Hold the connection; it ends in `die`'s sweep, with no close frame.
                r.cancelled().await;
                drop(ws);
            });
        }
    });
    Server {
        kill,
        release,
        tasks,
        sockets,
    }
}

fn hold_duplicate(
    tcp: tokio::net::TcpStream,
    all: &Mutex<Vec<std::net::TcpStream>>,
) -> std::io::Result<tokio::net::TcpStream> {
    let std = tcp.into_std()?;
    all.lock().unwrap().push(std.try_clone()?);
    tokio::net::TcpStream::from_std(std)
}

impl Server {
    /// Every socket shut down in one sweep (FIN to every client), and no more accepts.
    fn die(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        self.kill.cancel();
    }

    async fn finish(self) {
        self.die();
        self.release.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Waits until the peer closes; reads nothing else (the servers here never send).
async fn until_closed(tcp: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    while let Ok(1..) = tcp.read(&mut byte).await {}
}

/// Connects and upgrades; the WebSocket's TCP stream is then held raw, so noticing the
/// server's death costs one cheap wake-up.
async fn connect(addr: SocketAddr, url: &str) -> Option<(tokio::net::TcpStream, Instant)> {
    let started = Instant::now();
    // Let every client whose timer fired together take its timestamp before any of them
    // does the (serial, in this one process) connect and handshake work.
    tokio::task::yield_now().await;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
    Some((ws.into_inner(), started))
}

/// Runs one herd and reports when the reconnects were accepted.
pub async fn run(config: HerdConfig) -> HerdReport {
    ensure_open_files(2 * config.clients as u64 + 256);
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let listener = listen("127.0.0.1:0".parse().unwrap()).expect("listen");
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, None);
    let url = format!("ws://{addr}/");

    let stop = CancellationToken::new();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connected = Arc::new(Semaphore::new(0));
    let reconnected = Arc::new(Semaphore::new(0));
    // Only the first connections are rate-limited: they are set-up, not the measurement.
    let first_connects = Arc::new(Semaphore::new(200));
    let clients = TaskTracker::new();
    for i in 0..config.clients {
        let url = url.clone();
        let (stop, refused) = (stop.clone(), refused.clone());
        let (connected, reconnected) = (connected.clone(), reconnected.clone());
        let first_connects = first_connects.clone();
        let arrivals = arrivals.clone();
        let mut backoff = Backoff::new(config.initial, config.max)
            .jitter(config.jitter)
            .seeded(config.seed + i as u64);
        clients.spawn(async move {
            let permit = first_connects.acquire().await.unwrap();
            let mut tcp = loop {
                match tokio::time::timeout(Duration::from_secs(10), connect(addr, &url)).await {
                    Ok(Some((tcp, _))) => break tcp,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            drop(permit);
            connected.add_permits(1);
            until_closed(&mut tcp).await;
            let lost = Instant::now();
            drop(tcp);
            // wsmon's recommended behaviour: wait a backoff delay before every attempt,
            // the first one included.
            let mut tcp = loop {
                let due = Instant::now() + backoff.next_delay();
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    () = stop.cancelled() => return,
                }
                // The attempt is timed from its SYN.
                match tokio::time::timeout(Duration::from_secs(10), connect(addr, &url)).await {
                    Ok(Some((tcp, arrived))) => {
                        arrivals.lock().unwrap().push((lost, due, arrived));
                        break tcp;
                    }
                    _ => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            };
            backoff.reset();
            reconnected.add_permits(1);
            tokio::select! {
                () = until_closed(&mut tcp) => {}
                () = stop.cancelled() => {}
            }
        });
    }
    let all = config.clients as u32;
    tokio::time::timeout(Duration::from_secs(120), connected.acquire_many(all))
        .await
        .expect("every client connects before the server dies")
        .unwrap()
        .forget();

    let died = Instant::now();
    server.die();
    tokio::time::sleep(config.downtime).await;
    let listener = listen(addr).expect("the restarted server binds the same port");
    // The restarted server answers the upgrades once the herd has arrived: the handshakes'
    // CPU (2 × 2,000 in one process, unoptimised in tests) would otherwise delay the very
    // client timers being measured.
    let restarted = serve(listener, Some(died + config.answer_after));
    tokio::time::timeout(Duration::from_secs(120), reconnected.acquire_many(all))
        .await
        .expect("every client reconnects")
        .unwrap()
        .forget();

    stop.cancel();
    clients.close();
    server.finish().await;
    restarted.finish().await;
    clients.wait().await;

    let arrivals = arrivals.lock().unwrap().clone();
    let first_loss = arrivals.iter().map(|a| a.0).min().unwrap_or(died);
    let last_loss = arrivals.iter().map(|a| a.0).max().unwrap_or(died);
    // Offsets from each client's own notice of the loss: in one busy process the clients
    // notice it over tens to hundreds of milliseconds, where clients on their own machines
    // would notice it together, and that spread is not the behaviour under test.
    let since_loss = |at: fn(&(Instant, Instant, Instant)) -> Instant| {
        arrivals
            .iter()
            .map(|a| at(a).saturating_duration_since(a.0))
            .collect::<Vec<_>>()
    };
    let mut late: Vec<Duration> = arrivals
        .iter()
        .map(|(_, due, started)| started.saturating_duration_since(*due))
        .collect();
    late.sort();
    HerdReport {
        config,
        scheduled: Histogram::of(since_loss(|a| a.1), config.bucket),
        observed: Histogram::of(since_loss(|a| a.2), config.bucket),
        late_median: late.get(late.len() / 2).copied().unwrap_or_default(),
        late_max: late.last().copied().unwrap_or_default(),
        loss_spread: last_loss - first_loss,
        reconnected: arrivals.len(),
        refused_attempts: refused.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// A histogram, one line per non-empty bucket (one `#` per 20 reconnects).
pub fn render_histogram(h: &Histogram, bucket: Duration) -> String {
    let mut out = String::new();
    for (i, n) in h.buckets.iter().enumerate() {
        if *n > 0 {
            let from = bucket * i as u32;
            let bar = "#".repeat(n.div_ceil(20));
            out.push_str(&format!("{:>6} ms {:>5} {bar}\n", from.as_millis(), n));
        }
    }
    out
}

/// The run's figures and both histograms.
pub fn render(report: &HerdReport) -> String {
    let c = &report.config;
    let mut out = format!(
        "jitter={:?} clients={} initial={:?} max={:?} downtime={:?}\n\
         reconnects={} refused attempts={} all back within {:?}; clients noticed the loss \
         over {:?}; timers fired late by {:?} (median), {:?} (worst)\n",
        c.jitter,
        c.clients,
        c.initial,
        c.max,
        c.downtime,
        report.reconnected,
        report.refused_attempts,
        report.all_back_after(),
        report.loss_spread,
        report.late_median,
        report.late_max,
    );
    for (name, h) in [
        ("scheduled", &report.scheduled),
        ("observed", &report.observed),
    ] {
        out.push_str(&format!(
            "{name}: peak per {:?} bucket={} peak in any {:?} window={}\n",
            c.bucket,
            h.peak_bucket(),
            c.bucket,
            h.peak_window
        ));
        out.push_str(&render_histogram(h, c.bucket));
    }
    out
}
