//! The property tests' case count, which `PROPTEST_CASES` overrides for a longer run:
//! `PROPTEST_CASES=20000 cargo test --release -p wsmon --test queue_properties`.

pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
