//! What std does not expose: the monotonic clock as a number, process CPU and RSS, and the
//! open-file limit.

use std::io;
use std::time::Duration;

/// Microseconds on `CLOCK_MONOTONIC`, which every process on the host shares, so a publish
/// stamp taken in the server can be compared with a receive time taken in the client.
pub fn monotonic_micros() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// User plus system CPU time of this process (all threads), from `getrusage`.
pub fn self_cpu() -> Duration {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User plus system CPU time of another process, from `/proc/PID/stat` (clock-tick
/// resolution, 10 ms, so measure over seconds).
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    process_cpu_split(pid).map(|(user, system)| user + system)
}

/// User and system CPU time of another process, apart (see [`process_cpu`]).
pub fn process_cpu_split(pid: u32) -> io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields resume after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14, stime 15.
    let tick = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let time = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / hz);
    Ok((time(tick(11)?), time(tick(12)?)))
}

/// Resident set size of a process in bytes (`VmRSS`).
pub fn process_rss(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size of a process in bytes (`VmHWM`).
pub fn process_peak_rss(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {key} in /proc/{pid}/status")))
}

/// Raises this process's open-file soft limit to `want` (or the hard limit if lower) and
/// returns the new soft limit.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = want.min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target as libc::rlim_t;
        // SAFETY: `lim` is a valid rlimit no larger than the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_and_rss_are_readable_from_proc() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_rss(pid).unwrap() > 1024 * 1024);
        assert!(process_peak_rss(pid).unwrap() >= process_rss(pid).unwrap() / 2);
        assert!(process_cpu(pid).is_ok());
        assert!(self_cpu() > Duration::ZERO);
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_micros();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_micros() >= a + 2_000);
    }
}
