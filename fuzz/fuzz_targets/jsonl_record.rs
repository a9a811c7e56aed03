//! JSON Lines import: every line of `agentstore import` is parsed as a `Record`. Whatever
//! parses must serialize and parse back to the same record (export, then import, is the
//! identity), and nothing may panic.
#![no_main]

use agentstore::backend::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            continue;
        };
        let again = serde_json::to_string(&record).expect("a parsed record serializes");
        let back: Record = serde_json::from_str(&again).expect("a serialized record parses");
        assert_eq!(back, record, "{line}");
    }
});
