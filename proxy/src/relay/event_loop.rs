//! The relay threads. Each runs one edge-triggered `mio` poll over the sockets of its upgraded
//! connections, as an nginx worker does: one read and one write per readiness event, no task
//! to wake and no readiness bookkeeping per socket poll (tokio's cost per relayed message,
//! BENCHMARKS.md, 9b). Connections and shutdowns arrive as commands from the runtime.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tokio::sync::oneshot;

use super::connection::{Connection, Now, CLIENT, UPSTREAM};

const WAKER: Token = Token(usize::MAX);

/// Where the runtime hands connections to one relay thread.
#[derive(Debug)]
pub(super) struct Handle {
    /// `None` once dropped: the thread then ends at the next wake-up.
    commands: Option<mpsc::Sender<Command>>,
    waker: Waker,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The sender goes first, so the thread, once woken, finds the channel closed.
        self.commands = None;
        let _ = self.waker.wake();
    }
}

/// The relay threads of one proxy: upgraded connections are handed to them in turn. Each
/// thread ends, dropping what it still relays, once this is dropped.
#[derive(Debug)]
pub struct Relays {
    loops: Vec<Handle>,
    next: AtomicUsize,
}

impl Relays {
    /// Starts `threads` relay threads (at least one), named `wsmon-relay-N`.
    pub fn start(threads: usize) -> io::Result<Relays> {
        let loops = (0..threads.max(1))
            .map(Handle::start)
            .collect::<io::Result<_>>()?;
        Ok(Relays {
            loops,
            next: AtomicUsize::new(0),
        })
    }

    /// The thread for the next connection.
    pub(super) fn pick(&self) -> &Handle {
        &self.loops[self.next.fetch_add(1, Ordering::Relaxed) % self.loops.len()]
    }
}

/// Names one handed-over connection, for its shutdown command.
#[derive(Debug, Default)]
pub(super) struct Ticket {
    /// The connection's key in its loop, set by the loop before it reads the next command.
    key: AtomicUsize,
}

enum Command {
    Add(Box<Handover>),
    Shutdown(Arc<Ticket>),
}

struct Handover {
    connection: Connection,
    ticket: Arc<Ticket>,
    /// Dropped when the relay is over: the runtime's side then returns.
    done: oneshot::Sender<()>,
}

struct Entry {
    connection: Connection,
    ticket: Arc<Ticket>,
    _done: oneshot::Sender<()>,
    /// The earliest deadline queued in the timer heap for it.
    armed: Option<Instant>,
    /// In [`Loop::again`].
    queued: bool,
}

impl Handle {
    fn start(index: usize) -> io::Result<Handle> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (commands, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("wsmon-relay-{index}"))
            .spawn(move || run(poll, inbox))?;
        Ok(Handle {
            commands: Some(commands),
            waker,
        })
    }

    /// Hands `connection` to the thread; `done` is dropped when its relay is over.
    pub(super) fn add(
        &self,
        connection: Connection,
        ticket: Arc<Ticket>,
        done: oneshot::Sender<()>,
    ) -> io::Result<()> {
        let handover = Box::new(Handover {
            connection,
            ticket,
            done,
        });
        self.send(Command::Add(handover))
    }

    /// Starts the graceful shutdown of the connection handed over with `ticket`.
    pub(super) fn shutdown(&self, ticket: Arc<Ticket>) -> io::Result<()> {
        self.send(Command::Shutdown(ticket))
    }

    fn send(&self, command: Command) -> io::Result<()> {
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| io::Error::other("the relay thread has ended"))?;
        self.waker.wake()
    }
}

fn token(key: usize, leg: usize) -> Token {
    Token(key << 1 | leg)
}

struct Loop {
    poll: Poll,
    entries: Slab<Entry>,
    /// Deadlines, earliest first; an entry may be stale (its connection's deadline moved, or
    /// its key was reused), which costs only a needless drive.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections that used up their turn while still able to go on: driven again after
    /// the next poll, which then does not wait.
    again: Vec<usize>,
}

fn run(poll: Poll, inbox: mpsc::Receiver<Command>) {
    let mut this = Loop {
        poll,
        entries: Slab::new(),
        timers: BinaryHeap::new(),
        again: Vec::new(),
    };
    let mut again = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = if this.again.is_empty() {
            this.timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()))
        } else {
            Some(std::time::Duration::ZERO)
        };
        if let Err(err) = this.poll.poll(&mut events, timeout) {
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Dropping the entries ends their relays: each observer records its end.
            tracing::error!(error = %err, "relay poll failed; its connections are dropped");
            return;
        }
        let mut now = Now::default();
        // Those whose turn ran out go first, before the new events of the others.
        if !this.again.is_empty() {
            std::mem::swap(&mut again, &mut this.again);
            for key in again.drain(..) {
                if let Some(entry) = this.entries.get_mut(key) {
                    entry.queued = false;
                    this.drive(key, &mut now);
                }
            }
        }
        let mut commands = false;
        for event in &events {
            if event.token() == WAKER {
                commands = true;
                continue;
            }
            let key = event.token().0 >> 1;
            if let Some(entry) = this.entries.get_mut(key) {
                entry.connection.ready(event.token().0 & 1, event);
                this.drive(key, &mut now);
            }
        }
        if commands {
            loop {
                match inbox.try_recv() {
                    Ok(Command::Add(handover)) => this.add(*handover, &mut now),
                    Ok(Command::Shutdown(ticket)) => {
                        let key = ticket.key.load(Ordering::Acquire);
                        let Some(entry) = this.entries.get_mut(key) else {
                            continue;
                        };
                        if Arc::ptr_eq(&entry.ticket, &ticket) {
                            entry.connection.shutdown();
                            this.drive(key, &mut now);
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    // The handles live in a static: not while the process runs.
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
        }
        if !this.timers.is_empty() {
            let t = now.get();
            while let Some(&Reverse((at, key))) = this.timers.peek() {
                if at > t {
                    break;
                }
                this.timers.pop();
                if let Some(entry) = this.entries.get_mut(key) {
                    if entry.armed == Some(at) {
                        entry.armed = None;
                    }
                    this.drive(key, &mut now);
                }
            }
        }
    }
}

impl Loop {
    fn add(&mut self, handover: Handover, now: &mut Now) {
        let Handover {
            connection,
            ticket,
            done,
        } = handover;
        let vacant = self.entries.vacant_entry();
        let key = vacant.key();
        ticket.key.store(key, Ordering::Release);
        let entry = vacant.insert(Entry {
            connection,
            ticket,
            _done: done,
            armed: None,
            queued: false,
        });
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        let registered = registry
            .register(entry.connection.socket(CLIENT), token(key, CLIENT), both)
            .and_then(|()| {
                registry.register(
                    entry.connection.socket(UPSTREAM),
                    token(key, UPSTREAM),
                    both,
                )
            });
        if let Err(err) = registered {
            tracing::error!(error = %err, "could not poll an upgraded connection; dropped");
            self.remove(key);
            return;
        }
        self.drive(key, now);
    }

    /// Drives one connection; drops it when its relay is over, or queues its next deadline.
    fn drive(&mut self, key: usize, now: &mut Now) {
        let entry = &mut self.entries[key];
        if !entry.connection.drive(now) {
            self.remove(key);
            return;
        }
        if entry.connection.runnable() && !entry.queued {
            entry.queued = true;
            self.again.push(key);
        }
        if let Some(at) = entry.connection.deadline() {
            if entry.armed.is_none_or(|armed| at < armed) {
                entry.armed = Some(at);
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    fn remove(&mut self, key: usize) {
        let mut entry = self.entries.remove(key);
        let registry = self.poll.registry();
        let _ = registry.deregister(entry.connection.socket(CLIENT));
        let _ = registry.deregister(entry.connection.socket(UPSTREAM));
    }
}
