//! `backoff`, in `defaults` and in each canary.

use super::super::schema::{field, Absent, Key, Section};
use super::super::types::Backoff;
use super::super::units::{fmt_duration, show_duration};

/// Read over the inherited backoff, so either key may be omitted.
pub(super) const BACKOFF: Section<Backoff> = Section {
    keys: &[
        field!("initial", Absent::Keep, initial, duration(), show_duration),
        field!("max", Absent::Keep, max, duration(), show_duration),
    ],
    one_of: &[],
    check: Some(|cx, f, b| {
        if b.max < b.initial {
            // The inherited values are valid, so one of the two keys was given.
            let (n, k) = f.get("max").or(f.get("initial")).expect("one was set");
            let expected = format!(
                "backoff.max >= backoff.initial ({})",
                fmt_duration(b.initial)
            );
            return Err(cx.invalid(&k, expected, n));
        }
        Ok(())
    }),
};
