//! Text chunking for documents.
//!
//! Written by hand because the chunkers on crates.io either split on tokens of one
//! particular model or drop the byte offsets we need to point back into the document;
//! this one is small and its invariants are property-tested below.
//!
//! Invariants (for any input and valid options):
//! - every chunk is non-empty, starts and ends on a non-whitespace character, and is exactly
//!   `text[start..end]`;
//! - no chunk is longer than `size` characters;
//! - chunks start strictly later than the one before, and two neighbours share at most
//!   `overlap` characters;
//! - every non-whitespace character of the text lies in some chunk.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk size and overlap, in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkOptions {
    /// Longest chunk, in characters (16..=100_000).
    pub size: usize,
    /// Characters shared by neighbouring chunks (less than half the size).
    pub overlap: usize,
}

impl Default for ChunkOptions {
    /// 1,000 characters with 100 overlap: about 250 tokens, inside the 256-token window of
    /// small sentence-embedding models such as all-MiniLM-L6-v2.
    fn default() -> Self {
        ChunkOptions {
            size: 1000,
            overlap: 100,
        }
    }
}

impl ChunkOptions {
    /// Checks the bounds documented on the fields.
    pub fn validate(&self) -> Result<()> {
        if !(16..=100_000).contains(&self.size) {
            return Err(Error::invalid(
                "chunking.size",
                "must be between 16 and 100000 characters",
            ));
        }
        if self.overlap * 2 >= self.size {
            return Err(Error::invalid(
                "chunking.overlap",
                "must be less than half of chunking.size",
            ));
        }
        Ok(())
    }
}

/// One chunk: byte offsets into the source text, and the text itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChunk {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the last character.
    pub end: usize,
    /// `text[start..end]`.
    pub text: String,
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | ';')
}

/// Splits `text` into overlapping chunks, cutting at sentence ends where it can, else at
/// whitespace, else hard at `size` characters.
pub fn chunk_text(text: &str, opts: ChunkOptions) -> Result<Vec<TextChunk>> {
    opts.validate()?;
    // (byte offset, char) of every character; byte offset of the end appended for slicing.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut out: Vec<TextChunk> = Vec::new();
    let mut start = 0usize;
    while start < n {
        let (cut, last) = if n - start <= opts.size {
            (n, true)
        } else {
            (find_cut(&chars, start, start + opts.size, opts.size), false)
        };
        // Trim whitespace; the trimmed span holds only whitespace, so coverage is kept.
        let mut s = start;
        let mut e = cut;
        while s < e && chars[s].1.is_whitespace() {
            s += 1;
        }
        while e > s && chars[e - 1].1.is_whitespace() {
            e -= 1;
        }
        if s < e {
            // The overlap tail of the previous chunk may already cover this whole span.
            let covered = out.last().is_some_and(|p| byte_at(e) <= p.end);
            if !covered {
                out.push(TextChunk {
                    start: byte_at(s),
                    end: byte_at(e),
                    text: text[byte_at(s)..byte_at(e)].to_owned(),
                });
            }
        }
        if last {
            break;
        }
        // Measure the next start from the trimmed start, so it always moves past it.
        let base = if s < e { s } else { cut - 1 };
        start = next_start(&chars, base, cut, opts.overlap);
    }
    Ok(out)
}

/// Where to end a chunk that starts at `start` and may reach `limit` (exclusive).
fn find_cut(chars: &[(usize, char)], start: usize, limit: usize, size: usize) -> usize {
    // Only cut in the second half of the window, so chunks stay reasonably full and the
    // next start (cut - overlap, overlap < size / 2) always moves forward.
    let floor = start + size / 2;
    // A sentence end followed by whitespace, or a line break.
    for i in (floor + 1..=limit).rev() {
        let prev = chars[i - 1].1;
        let cur = chars.get(i).map(|c| c.1);
        if prev == '\n' || (is_sentence_end(prev) && cur.is_some_and(char::is_whitespace)) {
            return i;
        }
    }
    for i in (floor + 1..=limit).rev() {
        if chars.get(i).is_some_and(|c| c.1.is_whitespace()) {
            return i;
        }
    }
    limit
}

/// Start of the chunk after one whose text starts at `base` and was cut at `cut`.
fn next_start(chars: &[(usize, char)], base: usize, cut: usize, overlap: usize) -> usize {
    if overlap == 0 {
        return cut;
    }
    let from = cut.saturating_sub(overlap).max(base + 1);
    // Begin the overlap at a word start rather than mid-word.
    (from..cut)
        .find(|&i| i > 0 && chars[i - 1].1.is_whitespace() && !chars[i].1.is_whitespace())
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_at_sentences() {
        let text = "One sentence here. Another one follows it. And a third sentence ends the text.";
        let chunks = chunk_text(
            text,
            ChunkOptions {
                size: 45,
                overlap: 0,
            },
        )
        .unwrap();
        assert_eq!(chunks[0].text, "One sentence here. Another one follows it.");
        assert_eq!(chunks[1].text, "And a third sentence ends the text.");
    }

    #[test]
    fn short_text_is_one_chunk_and_blank_is_none() {
        let c = chunk_text("  hello  ", ChunkOptions::default()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start, c[0].end, c[0].text.as_str()), (2, 7, "hello"));
        assert!(
            chunk_text(" \n\t ", ChunkOptions::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rejects_bad_options() {
        assert!(
            ChunkOptions {
                size: 8,
                overlap: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            ChunkOptions {
                size: 100,
                overlap: 50
            }
            .validate()
            .is_err()
        );
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            "[a-zA-Z]{1,12}",
            "[a-z]{1,40}",
            Just(".".to_string()),
            Just("\n".to_string()),
            Just("äöü€漢字".to_string()),
            Just("  ".to_string()),
        ];
        prop::collection::vec(
            (
                word,
                prop_oneof![Just(" "), Just(". "), Just(""), Just("\n\n")],
            ),
            0..200,
        )
        .prop_map(|v| v.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn chunk_invariants(text in text_strategy(), size in 16usize..300, overlap_frac in 0usize..50) {
            let overlap = size * overlap_frac / 100;
            let opts = ChunkOptions { size, overlap };
            let chunks = chunk_text(&text, opts).unwrap();
            let mut covered = vec![false; text.len()];
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(!c.text.is_empty());
                prop_assert_eq!(&text[c.start..c.end], c.text.as_str());
                prop_assert!(c.text.chars().count() <= size);
                prop_assert!(!c.text.starts_with(char::is_whitespace));
                prop_assert!(!c.text.ends_with(char::is_whitespace));
                if i > 0 {
                    let p = &chunks[i - 1];
                    prop_assert!(c.start > p.start);
                    prop_assert!(c.end > p.end);
                    if c.start < p.end {
                        prop_assert!(text[c.start..p.end].chars().count() <= overlap);
                    }
                }
                covered[c.start..c.end].fill(true);
            }
            for (b, ch) in text.char_indices() {
                if !ch.is_whitespace() {
                    prop_assert!(covered[b], "byte {} ({:?}) not covered", b, ch);
                }
            }
        }
    }
}
