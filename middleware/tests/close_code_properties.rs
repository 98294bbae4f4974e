//! Property tests of the close-code classifier: every code, under every allowlist, lands in
//! the declared label set, whose size is the documented bound.

use std::collections::BTreeSet;

#[path = "support/proptest_cases.rs"]
mod proptest_cases;

use proptest::prelude::*;
use proptest_cases::cases;
use wsmon::close_code::{classify, CloseCodeClassifier};

/// The documented mapping (docs/metrics.md), written out independently of the crate.
fn documented(code: u16, allowlist: &BTreeSet<u16>) -> String {
    match code {
        1000..=1015 => code.to_string(),
        3000..=4999 if allowlist.contains(&code) => code.to_string(),
        3000..=3999 => "3xxx".into(),
        4000..=4999 => "4xxx".into(),
        _ => "other".into(),
    }
}

fn allowlists() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(
        prop_oneof![3000u16..5000, any::<u16>(), 1000u16..1016],
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn every_code_maps_to_its_documented_label(allow in allowlists(), code in any::<u16>()) {
        let classifier = CloseCodeClassifier::with_allowlist(allow.iter().copied());
        let kept: BTreeSet<u16> = allow.iter().copied().filter(|c| (3000..=4999).contains(c)).collect();
        prop_assert_eq!(classifier.classify(code), documented(code, &kept));
        prop_assert!(classifier.label_values().contains(&classifier.classify(code)));
        // Without an allowlist entry for it, a code is classified as by the free function.
        if !kept.contains(&code) {
            prop_assert_eq!(classifier.classify(code), classify(code));
        }
    }

    #[test]
    fn the_label_set_is_bounded_by_19_plus_the_allowlisted_application_codes(allow in allowlists()) {
        let classifier = CloseCodeClassifier::with_allowlist(allow.iter().copied());
        let kept: BTreeSet<u16> = allow.iter().copied().filter(|c| (3000..=4999).contains(c)).collect();
        let values = classifier.label_values();
        let distinct: BTreeSet<&str> = values.iter().copied().collect();
        prop_assert_eq!(distinct.len(), values.len(), "no duplicate label values");
        prop_assert_eq!(values.len(), 19 + kept.len());
    }

    #[test]
    fn any_sequence_of_codes_yields_at_most_the_bound(allow in allowlists(), codes in prop::collection::vec(any::<u16>(), 0..2000)) {
        let classifier = CloseCodeClassifier::with_allowlist(allow.iter().copied());
        let seen: BTreeSet<&str> = codes.iter().map(|c| classifier.classify(*c)).collect();
        prop_assert!(seen.len() <= classifier.label_values().len());
    }
}
