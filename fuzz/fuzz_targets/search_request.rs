//! Search requests (the body of POST /v1/search, and `agentstore search`): validation
//! and mode resolution never panic, and the FTS5 expression built from any query text is
//! valid FTS5 that searches for words only: it runs against a real FTS5 table without a
//! syntax error, and its quoted terms are exactly the query's words.
#![no_main]

use std::cell::RefCell;

use agentstore::Limits;
use agentstore::search::{SearchRequest, fts5_expression, query_terms};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static FTS: RefCell<rusqlite::Connection> = RefCell::new({
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(content, tokenize = 'porter unicode61 remove_diacritics 2');
             INSERT INTO t (content) VALUES ('the quick brown fox'), ('jumps over the lazy dog');",
        )
        .unwrap();
        c
    });
}

/// The terms of an expression `"a" OR "b"*`, unquoted; None if it is not of that shape.
fn unquote(expr: &str) -> Option<Vec<String>> {
    let mut terms = Vec::new();
    let mut rest = expr;
    loop {
        rest = rest.strip_prefix('"')?;
        let mut term = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    term.push('"');
                    chars.next();
                } else {
                    break i + 1;
                }
            } else {
                term.push(c);
            }
        };
        terms.push(term);
        rest = &rest[end..];
        rest = rest.strip_prefix('*').unwrap_or(rest);
        if rest.is_empty() {
            return Some(terms);
        }
        rest = rest.strip_prefix(" OR ")?;
    }
}

fn check_text(text: &str) {
    let terms = query_terms(text);
    let Some(expr) = fts5_expression(&terms) else {
        assert!(terms.is_empty());
        return;
    };
    assert_eq!(unquote(&expr).as_deref(), Some(terms.as_slice()), "{expr}");
    FTS.with(|c| {
        let c = c.borrow();
        let r: rusqlite::Result<i64> =
            c.query_row("SELECT COUNT(*) FROM t WHERE t MATCH ?1", [&expr], |r| {
                r.get(0)
            });
        r.unwrap_or_else(|e| panic!("{expr:?} is not valid FTS5: {e}"));
    });
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<SearchRequest>(data) {
        let limits = Limits::default();
        let _ = req.validate(&limits, true);
        let _ = req.validate(&limits, false);
        let _ = req.resolve_mode(true);
        for c in &req.filter.metadata {
            if c.validate().is_ok() {
                let _ = c.json_path();
            }
        }
        if let Some(t) = &req.text {
            check_text(t);
        }
    } else if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
});
