//! Hostile input in every free-text field of an encrypted store (SQLite only: field
//! encryption is this backend's): whatever the store accepts comes back byte-identical,
//! sealed or not; whatever it refuses, it refuses with `invalid_input` or `too_large` and
//! writes nothing. The strategy and the round trip are the conformance suite's
//! (`hostile.rs`), which runs it on a store without encryption.

use proptest::prelude::*;

use crate::common::store_encrypted;
use crate::hostile::{hostile, round_trip};

proptest! {
    // Each case opens a store on disk.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// On an encrypted store, half the records belong to a subject (sealed fields), half
    /// to nobody (clear text).
    #[test]
    fn hostile_text_comes_back_byte_identical(s in hostile(), sealed in any::<bool>()) {
        let t = store_encrypted();
        round_trip(&t, &s, sealed)?;
    }
}
