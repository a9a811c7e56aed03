//! The chunker behind `agentstore ingest` and documents: for any text and any valid
//! options, every chunk is the slice of the text its offsets name, no chunk is longer
//! than the size, and what lies between or around chunks is only whitespace.
#![no_main]

use agentstore::text::{ChunkOptions, chunk_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let size = 16 + usize::from(u16::from_le_bytes([data[0], data[1]])) % 2000;
    let overlap = usize::from(u16::from_le_bytes([data[2], data[3]])) % (size / 2);
    let Ok(text) = std::str::from_utf8(&data[4..]) else {
        return;
    };
    let chunks = chunk_text(text, ChunkOptions { size, overlap }).expect("the options are valid");
    let mut covered = 0;
    for c in &chunks {
        assert_eq!(&text[c.start..c.end], c.text);
        assert!(c.text.chars().count() <= size, "a chunk longer than {size}");
        if c.start > covered {
            assert!(
                text[covered..c.start].chars().all(char::is_whitespace),
                "text between chunks was dropped"
            );
        }
        covered = covered.max(c.end);
    }
    assert!(
        text[covered..].chars().all(char::is_whitespace),
        "the end of the text was dropped"
    );
});
