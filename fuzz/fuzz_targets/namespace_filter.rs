//! Namespace paths (every `namespace` field and filter) and metadata filter paths: a
//! parsed namespace encodes and decodes to itself and falls inside its own prefix range;
//! a valid metadata path makes a JSON path without panicking.
#![no_main]

use agentstore::Namespace;
use agentstore::search::{MetadataCondition, MetadataOp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ns) = Namespace::parse_path(text) {
        let enc = ns.encode();
        assert_eq!(Namespace::decode(&enc), ns);
        let (lo, hi) = ns.prefix_range();
        assert!(enc >= lo);
        if let Some(hi) = hi {
            assert!(enc < hi);
        }
        assert_eq!(Namespace::parse_path(&ns.display_path()).ok(), Some(ns));
    }
    let cond = MetadataCondition::new(text, MetadataOp::Eq, text);
    if cond.validate().is_ok() {
        let path = cond.json_path();
        assert!(path.starts_with('$'), "{path}");
    }
});
