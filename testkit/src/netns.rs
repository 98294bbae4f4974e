//! Network namespaces for a client host, a proxy host and a server host, joined by veth
//! pairs, with the faults a real network has: a link set down (a silent blackhole: no FIN, no
//! RST), a `tc qdisc tbf` bandwidth limit, and an `iptables` DROP rule.
//!
//! ```text
//!   client ns                proxy ns                     server ns
//!   10.X.Y.1 ── to-proxy ─── to-client 10.X.Y.2
//!                            to-server 10.X.Y.5 ─── to-proxy ── 10.X.Y.6
//! ```
//!
//! The namespaces have no default route and no link to the host's own namespace, so their
//! traffic can only reach each other's addresses. The test process (and Prometheus) reach a
//! service inside through [`Netns::forward_from_loopback`], a loopback relay whose outbound
//! sockets live in the namespace. Everything is torn down on drop, panics included: the
//! processes still inside are killed by PID and the namespaces deleted (with their links).
//!
//! Needs root and `ip` (iproute2); `tc` and `iptables` for those faults.
//! [`Topology::create`] says which is missing, and [`require`] turns that into a loud
//! failure under `CI=true`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Why namespaces could not be set up or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// Not root: namespaces, links and qdiscs need CAP_NET_ADMIN.
    #[error("network namespaces need root (running as uid {uid})")]
    NotRoot {
        /// The effective uid.
        uid: u32,
    },
    /// A command could not be started (not installed).
    #[error("cannot run `{command}` ({source}): install Debian's `{package}` package (`bash scripts/test.sh` does)")]
    Missing {
        /// The command line.
        command: String,
        /// Its Debian package.
        package: &'static str,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// `Ok(value)`, or for a missing capability: a panic under `CI=true` (CI must not pass by
/// skipping), otherwise a loud note on stderr and `None`, so a developer without root sees
/// what was not run.
pub fn require<T>(what: &str, result: Result<T, NetnsError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{what} needs network namespaces, and CI=true: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED (not under CI=true): {what}: {e}");
            None
        }
    }
}

/// Runs `program args…` to completion; an error names the command and its stderr.
fn run(program: &str, args: &[&str], package: &'static str) -> Result<(), NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Missing {
            command: command.clone(),
            package,
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// One network namespace, deleted on drop (after killing the processes still in it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid != 0 {
            return Err(NetnsError::NotRoot { uid });
        }
        run("ip", &["netns", "add", name], "iproute2")?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), NetnsError> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all, "iproute2")
    }

    /// `ip netns exec NAME program args…`, to completion.
    pub fn exec(
        &self,
        program: &str,
        args: &[&str],
        package: &'static str,
    ) -> Result<(), NetnsError> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all, package).map_err(|e| match e {
            // `ip netns exec` itself is there; name the program that is not.
            NetnsError::Failed { stderr, .. } if stderr.contains("No such file") => {
                NetnsError::Missing {
                    command: program.to_string(),
                    package,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, stderr),
                }
            }
            e => e,
        })
    }

    /// A command that runs `program` inside the namespace. `ip netns exec` execs it, so
    /// the child's PID is the program's own (stop it by that PID).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The same as [`Netns::command`], for `tokio::process`.
    pub fn tokio_command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        self.command(program).into()
    }

    /// Sets link `dev` up or down. Down is a silent blackhole for the link's peer: packets
    /// vanish, and neither end's TCP hears a FIN or an RST.
    pub fn set_link(&self, dev: &str, up: bool) -> Result<(), NetnsError> {
        self.ip(&["link", "set", dev, if up { "up" } else { "down" }])
    }

    /// Limits what `dev` sends with a token bucket: `tc qdisc add dev DEV root tbf rate RATE
    /// burst BURST latency LATENCY` (e.g. "256kbit", "16kb", "50ms"). netem is not available
    /// on every kernel; tbf is.
    pub fn throttle(
        &self,
        dev: &str,
        rate: &str,
        burst: &str,
        latency: &str,
    ) -> Result<(), NetnsError> {
        self.exec(
            "tc",
            &[
                "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency",
                latency,
            ],
            "iproute2",
        )
    }

    /// Removes [`Netns::throttle`]'s qdisc.
    pub fn unthrottle(&self, dev: &str) -> Result<(), NetnsError> {
        self.exec("tc", &["qdisc", "del", "dev", dev, "root"], "iproute2")
    }

    /// Drops every packet this namespace sends to `to` (an asymmetric loss: replies still
    /// arrive): `iptables -A OUTPUT -d TO -j DROP`.
    pub fn drop_output_to(&self, to: Ipv4Addr) -> Result<(), NetnsError> {
        let to = to.to_string();
        self.exec(
            "iptables",
            &["-A", "OUTPUT", "-d", &to, "-j", "DROP"],
            "iptables",
        )
    }

    /// Removes [`Netns::drop_output_to`]'s rule.
    pub fn undrop_output_to(&self, to: Ipv4Addr) -> Result<(), NetnsError> {
        let to = to.to_string();
        self.exec(
            "iptables",
            &["-D", "OUTPUT", "-d", &to, "-j", "DROP"],
            "iptables",
        )
    }

    /// Runs `f` on a new thread that has entered this namespace: sockets it creates live
    /// there (a socket keeps the namespace it was created in).
    fn in_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<T>> {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))?;
        std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                // SAFETY: a valid namespace fd; setns changes only this thread's namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
    }

    /// A TCP connection to `to` made from inside the namespace, for a client the test drives
    /// itself (a tokio stream: call from within a runtime).
    pub async fn connect(&self, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        let thread = self.in_thread(move || {
            let s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })?;
        let std_stream = tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("netns thread")?;
        tokio::net::TcpStream::from_std(std_stream)
    }

    /// A relay from a free 127.0.0.1 port (in the test's own namespace) to `target` inside
    /// this one: how Prometheus scrapes a service in here, and how a client in the host
    /// namespace reaches it. Stops when dropped.
    pub fn forward_from_loopback(&self, target: SocketAddr) -> std::io::Result<Forward> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = self.in_thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("relay listener");
                let mut stopped = std::pin::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((mut inbound, _)) = accepted else { continue };
                            // Spawned on this thread's runtime: the outbound socket is
                            // created inside the namespace.
                            tokio::spawn(async move {
                                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                                }
                            });
                        }
                    }
                }
            });
        })?;
        Ok(Forward {
            addr,
            target,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// PIDs of the processes inside (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only processes this test started can be in a namespace it created.
        for pid in self.pids() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = run("ip", &["netns", "del", &self.name], "iproute2");
    }
}

/// A loopback relay into a namespace (see [`Netns::forward_from_loopback`]).
#[derive(Debug)]
pub struct Forward {
    /// Where it listens, on 127.0.0.1 in the test's namespace.
    pub addr: SocketAddr,
    /// Where it connects, inside the namespace.
    pub target: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Not joined: a relayed connection may still be open, and it ends with the thread's
        // runtime when the process exits or the namespace goes.
        drop(self.thread.take());
    }
}

/// A client host, a proxy host and a server host: three namespaces and two veth pairs,
/// on a 10.X.Y.0/29 chosen per topology.
#[derive(Debug)]
pub struct Topology {
    /// The client host.
    pub client: Netns,
    /// The proxy host, the only one with a link to both others.
    pub proxy: Netns,
    /// The server host.
    pub server: Netns,
    /// The client's address, on its link to the proxy.
    pub client_addr: Ipv4Addr,
    /// The proxy's address on the client link.
    pub proxy_client_side: Ipv4Addr,
    /// The proxy's address on the server link.
    pub proxy_server_side: Ipv4Addr,
    /// The server's address.
    pub server_addr: Ipv4Addr,
}

impl Topology {
    /// The proxy's link to the client (in [`Topology::proxy`]): throttle it to slow what
    /// clients receive.
    pub const PROXY_TO_CLIENT: &'static str = "to-client";
    /// The proxy's link to the server (in [`Topology::proxy`]): set it down for a blackhole.
    pub const PROXY_TO_SERVER: &'static str = "to-server";
    /// The client's and the server's link to the proxy.
    pub const TO_PROXY: &'static str = "to-proxy";

    /// Creates the three namespaces, named `wsm-<tag>-<pid>-<n>-{c,p,s}`, and links them.
    pub fn create(tag: &str) -> Result<Self, NetnsError> {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let base = format!("wsm-{tag}-{pid}-{n}");
        // 10.200-249.n.0/29: the namespaces have no route beyond their own links, so the
        // choice only keeps concurrent topologies' logs apart.
        let (a, b) = (200 + (pid % 50) as u8, n);
        let addr = |last: u8| Ipv4Addr::new(10, a, b, last);
        let client = Netns::create(&format!("{base}-c"))?;
        let proxy = Netns::create(&format!("{base}-p"))?;
        let server = Netns::create(&format!("{base}-s"))?;
        let t = Self {
            client_addr: addr(1),
            proxy_client_side: addr(2),
            proxy_server_side: addr(5),
            server_addr: addr(6),
            client,
            proxy,
            server,
        };
        t.link(
            &t.client,
            Self::TO_PROXY,
            t.client_addr,
            &t.proxy,
            Self::PROXY_TO_CLIENT,
            t.proxy_client_side,
        )?;
        t.link(
            &t.proxy,
            Self::PROXY_TO_SERVER,
            t.proxy_server_side,
            &t.server,
            Self::TO_PROXY,
            t.server_addr,
        )?;
        Ok(t)
    }

    /// A veth pair created with each end already in its namespace (so no name is ever taken
    /// in the host's), addressed on a /30 and up.
    fn link(
        &self,
        a: &Netns,
        a_dev: &str,
        a_addr: Ipv4Addr,
        b: &Netns,
        b_dev: &str,
        b_addr: Ipv4Addr,
    ) -> Result<(), NetnsError> {
        run(
            "ip",
            &[
                "link",
                "add",
                "name",
                a_dev,
                "netns",
                a.name(),
                "type",
                "veth",
                "peer",
                "name",
                b_dev,
                "netns",
                b.name(),
            ],
            "iproute2",
        )?;
        for (ns, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
            ns.ip(&["addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ns.set_link(dev, true)?;
        }
        Ok(())
    }

    /// `ip:port` on the server host.
    pub fn server_socket(&self, port: u16) -> SocketAddr {
        SocketAddrV4::new(self.server_addr, port).into()
    }

    /// `ip:port` on the proxy host's client side.
    pub fn proxy_socket(&self, port: u16) -> SocketAddr {
        SocketAddrV4::new(self.proxy_client_side, port).into()
    }
}
