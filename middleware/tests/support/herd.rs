//! The reconnect herd: a server dies under many connected clients that reconnect with
//! `wsmon::backoff`, comes back after a fixed downtime, and records when each reconnect
//! arrives.
//!
//! The server is back before any client's first attempt could reach it (`downtime` is
//! shorter than `initial`), as when a supervisor restarts a crashed process at once; the
//! herd is then purely the clients' timing.
//!
//! An arrival is timed when a client's backoff timer fires and it starts the attempt that
//! succeeds: the moment its SYN would leave its own machine. Timing the server's `accept`
//! instead would measure how fast this one process (2,000 clients and the server together,
//! on a small machine) gets through the work, not when the clients came. The
//! server dies by shutting every socket down in one sweep, as a crashing process's sockets
//! are closed by the kernel at once. Shared by `tests/reconnect_herd.rs` (which asserts) and
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

#[derive(Debug, Clone)]
pub struct HerdReport {
    pub config: HerdConfig,
    /// Reconnects arriving per bucket, timed from the moment each client noticed the loss.
    pub buckets: Vec<usize>,
    /// First to last client noticing the loss.
    pub loss_spread: Duration,
    pub reconnected: usize,
    /// The most reconnects accepted in any one bucket-long window (not aligned to buckets).
    pub peak_window: usize,
    /// Connect attempts refused while the server was down.
    pub refused_attempts: usize,
}

impl HerdReport {
    pub fn peak_bucket(&self) -> usize {
        self.buckets.iter().copied().max().unwrap_or(0)
    }

    /// The time by which every client was back.
    pub fn all_back_after(&self) -> Duration {
        self.config.bucket * self.buckets.len() as u32
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
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = stop.cancelled() => return,
                }
                // The attempt is timed from its SYN.
                match tokio::time::timeout(Duration::from_secs(10), connect(addr, &url)).await {
                    Ok(Some((tcp, arrived))) => {
                        arrivals.lock().unwrap().push((lost, arrived));
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
    let first_loss = arrivals.iter().map(|(l, _)| *l).min().unwrap_or(died);
    let last_loss = arrivals.iter().map(|(l, _)| *l).max().unwrap_or(died);
    // Offsets from each client's own notice of the loss: in one busy process the clients
    // notice it over a few hundred milliseconds, where clients on their own machines would
    // notice it together, and that spread is not the behaviour under test.
    let mut times: Vec<Duration> = arrivals
        .iter()
        .map(|(lost, arrived)| arrived.saturating_duration_since(*lost))
        .collect();
    times.sort();
    let mut buckets = Vec::new();
    for t in &times {
        let b = (t.as_nanos() / config.bucket.as_nanos()) as usize;
        if buckets.len() <= b {
            buckets.resize(b + 1, 0);
        }
        buckets[b] += 1;
    }
    let mut peak_window = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= config.bucket {
            start += 1;
        }
        peak_window = peak_window.max(end - start + 1);
    }
    HerdReport {
        config,
        buckets,
        loss_spread: last_loss - first_loss,
        reconnected: times.len(),
        peak_window,
        refused_attempts: refused.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// The histogram as a table row per bucket, for the example's output.
pub fn render(report: &HerdReport) -> String {
    let c = &report.config;
    let mut out = format!(
        "jitter={:?} clients={} initial={:?} max={:?} downtime={:?}\n\
         reconnects={} peak per {:?} bucket={} peak in any {:?} window={} \
         refused attempts={} all back within {:?} (clients noticed the loss over {:?})\n",
        c.jitter,
        c.clients,
        c.initial,
        c.max,
        c.downtime,
        report.reconnected,
        c.bucket,
        report.peak_bucket(),
        c.bucket,
        report.peak_window,
        report.refused_attempts,
        report.all_back_after(),
        report.loss_spread,
    );
    for (i, n) in report.buckets.iter().enumerate() {
        if *n > 0 {
            let from = c.bucket * i as u32;
            let bar = "#".repeat(n.div_ceil(20));
            out.push_str(&format!("{:>6} ms {:>5} {bar}\n", from.as_millis(), n));
        }
    }
    out
}
