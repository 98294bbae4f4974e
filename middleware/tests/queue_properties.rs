//! Property tests of the outbound queue against a model of its documented behaviour: depth and
//! bytes never exceed capacity, every push is queued, dropped or evicts, and every queued
//! message is delivered, discarded as the oldest, or cleared by an eviction.

use std::collections::VecDeque;

#[path = "support/proptest_cases.rs"]
mod proptest_cases;

use proptest::prelude::*;
use proptest_cases::cases;
use tokio_tungstenite::tungstenite::Message;
use wsmon::queue::{outbound_queue, Next, OverflowPolicy, Pushed, QueueConfig};
use wsmon::WsMon;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![3 => (0usize..48).prop_map(Op::Push), 1 => Just(Op::Pop)],
        0..120,
    )
}

fn config() -> impl Strategy<Value = QueueConfig> {
    (
        1usize..8,
        1usize..128,
        prop_oneof![
            Just(OverflowPolicy::DropOldest),
            Just(OverflowPolicy::DropNewest),
            Just(OverflowPolicy::Disconnect),
        ],
    )
        .prop_flat_map(|(messages, bytes, policy)| {
            (1..=messages, 1..=bytes).prop_map(move |(hw_messages, hw_bytes)| {
                QueueConfig::default()
                    .capacity(messages)
                    .capacity_bytes(bytes)
                    .high_water(hw_messages, hw_bytes)
                    .policy(policy)
            })
        })
}

/// The documented behaviour, written independently of the implementation. Messages are
/// identified by their push index.
#[derive(Default)]
struct Model {
    items: VecDeque<(usize, usize)>,
    bytes: usize,
    evicted: bool,
    drops: u64,
    disconnects: u64,
}

impl Model {
    fn push(&mut self, cfg: &QueueConfig, id: usize, size: usize) -> Pushed {
        if self.evicted {
            return Pushed::Closed;
        }
        let fits = |m: &Model| {
            m.items.len() < cfg.capacity_messages && m.bytes + size <= cfg.capacity_bytes
        };
        if fits(self) {
            self.items.push_back((id, size));
            self.bytes += size;
            return Pushed::Queued;
        }
        match cfg.policy {
            OverflowPolicy::Disconnect => {
                self.evicted = true;
                self.items.clear();
                self.bytes = 0;
                self.disconnects += 1;
                Pushed::Evicted
            }
            // A message that could never fit is the one dropped, whatever the policy says
            // about older ones: discarding them would not make room.
            OverflowPolicy::DropNewest => {
                self.drops += 1;
                Pushed::DroppedNewest
            }
            OverflowPolicy::DropOldest if size > cfg.capacity_bytes => {
                self.drops += 1;
                Pushed::DroppedNewest
            }
            OverflowPolicy::DropOldest => {
                while !fits(self) {
                    let (_, old) = self.items.pop_front().expect("room once empty");
                    self.bytes -= old;
                }
                self.items.push_back((id, size));
                self.bytes += size;
                self.drops += 1;
                Pushed::DroppedOldest
            }
            other => unreachable!("the model knows no policy {other:?}"),
        }
    }
}

fn message(id: usize, size: usize) -> Message {
    // The id rides in the first bytes when there is room, so delivery order is checked too.
    let mut payload = vec![0u8; size];
    for (i, b) in id.to_be_bytes().iter().rev().take(size).enumerate() {
        payload[i] = *b;
    }
    Message::binary(payload)
}

fn scrape(wsmon: &WsMon, name: &str, labels: &str) -> f64 {
    let text = wsmon.render();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

proptest! {
    // Each case renders the registry after every operation: few cases, many operations.
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn the_queue_behaves_like_its_model_and_never_exceeds_capacity(cfg in config(), ops in ops()) {
        let registry = prometheus::Registry::new();
        let wsmon = WsMon::builder().build(&registry).unwrap();
        let socket = wsmon.instrument("/q", ());
        let (tx, mut rx) = outbound_queue::<Message>(&socket.handle(), cfg);
        let mut model = Model::default();
        let (mut pushes, mut queued, mut dropped, mut evicted, mut closed) = (0, 0, 0, 0, 0);

        for (id, op) in ops.iter().enumerate() {
            match *op {
                Op::Push(size) => {
                    pushes += 1;
                    let got = tx.push(message(id, size));
                    let want = model.push(&cfg, id, size);
                    prop_assert_eq!(got, want, "push #{} of {} bytes", id, size);
                    match got {
                        Pushed::Queued => queued += 1,
                        Pushed::DroppedNewest | Pushed::DroppedOldest => dropped += 1,
                        Pushed::Evicted => evicted += 1,
                        Pushed::Closed => closed += 1,
                        other => panic!("unexpected push result {other:?}"),
                    }
                }
                Op::Pop => match rx.try_recv() {
                    Some(Next::Message(m)) => {
                        let (id, size) = model.items.pop_front().expect("model has one too");
                        model.bytes -= size;
                        prop_assert_eq!(m.into_data(), message(id, size).into_data());
                    }
                    Some(Next::Evicted) => prop_assert!(model.evicted),
                    None => prop_assert!(model.items.is_empty() && !model.evicted),
                },
            }
            prop_assert!(model.items.len() <= cfg.capacity_messages);
            prop_assert!(model.bytes <= cfg.capacity_bytes);
            let depth = scrape(&wsmon, "websocket_server_outbound_queue_messages", "route=\"/q\"");
            prop_assert_eq!(depth, model.items.len() as f64, "reported depth");
        }
        // Every push had exactly one outcome.
        prop_assert_eq!(pushes, queued + dropped + evicted + closed);
        prop_assert!(evicted <= 1, "a connection is evicted at most once");
        let drops = scrape(&wsmon, "websocket_server_outbound_overflows_total", "action=\"drop\"");
        let disconnects = scrape(&wsmon, "websocket_server_outbound_overflows_total", "action=\"disconnect\"");
        prop_assert_eq!(drops, model.drops as f64);
        prop_assert_eq!(disconnects, model.disconnects as f64);
        // What is left comes out in order and within the byte capacity.
        let mut left = 0usize;
        while let Some(Next::Message(m)) = rx.try_recv() {
            let (id, size) = model.items.pop_front().expect("model has one too");
            prop_assert_eq!(m.into_data(), message(id, size).into_data());
            left += size;
        }
        prop_assert!(model.items.is_empty());
        prop_assert!(left <= cfg.capacity_bytes);
    }
}
