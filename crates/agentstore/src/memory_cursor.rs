//! Keyset pagination of memory lists, the same on every backend: the sort of each
//! [`MemoryOrder`], the cursor naming a page's last item, and the condition that selects
//! the rows after it. A backend only binds the condition's values its own way.

use crate::backend::MemoryOrder;
use crate::codec::columns::{decode_cursor, encode_cursor, ts};
use crate::error::{Error, Result};
use crate::model::Memory;

/// A value of a cursor condition, for the backend to bind.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum CursorValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Keyset position of the last item of a page, one shape per order. Every order ends in
/// `id`, so positions are unique and a page boundary between equal sort keys neither
/// repeats nor skips a row.
enum Position {
    Recent {
        created: i64,
        id: String,
    },
    Priority {
        pinned: bool,
        priority: i64,
        created: i64,
        id: String,
    },
    /// A score order ([`score_order`]): its expression, then newest.
    Score {
        expr: &'static str,
        score: f64,
        created: i64,
        id: String,
    },
    AccessCount {
        count: i64,
        created: i64,
        id: String,
    },
    Updated {
        updated: i64,
        id: String,
    },
}

/// The orders by one floating-point score: the cursor's tag and the sort expression.
/// A memory without a success rate sorts below every rate (rates are 0..1), so that
/// both backends put it last and a cursor can still name its position.
fn score_order(order: MemoryOrder) -> Option<(&'static str, &'static str)> {
    match order {
        MemoryOrder::Importance => Some(("i", "importance")),
        MemoryOrder::Confidence => Some(("c", "confidence")),
        MemoryOrder::SuccessRate => Some(("s", "COALESCE(success_rate, -1.0)")),
        _ => None,
    }
}

fn score_of(order: MemoryOrder, m: &Memory) -> f64 {
    match order {
        MemoryOrder::Importance => m.importance,
        MemoryOrder::Confidence => m.confidence,
        _ => m.success_rate.unwrap_or(-1.0),
    }
}

/// The `ORDER BY` clause of `order`, ending in `id` so that cursors are unique.
pub fn order_by(order: MemoryOrder) -> String {
    match (order, score_order(order)) {
        (_, Some((_, expr))) => format!("{expr} DESC, created_at DESC, id DESC"),
        (MemoryOrder::Priority, _) => "pinned DESC, priority DESC, created_at DESC, id DESC".into(),
        (MemoryOrder::AccessCount, _) => "access_count DESC, created_at DESC, id DESC".into(),
        (MemoryOrder::Updated, _) => "updated_at DESC, id DESC".into(),
        _ => "created_at DESC, id DESC".into(),
    }
}

fn malformed() -> Error {
    Error::invalid("after", "malformed cursor")
}

/// A page's last item in a [`MemoryOrder`], read from or made into the text of `after`.
pub struct MemoryCursor(Position);

impl MemoryCursor {
    /// The cursor naming `m`'s position in `order`.
    pub fn of(order: MemoryOrder, m: &Memory) -> String {
        let created = ts(&m.created_at);
        if let Some((tag, _)) = score_order(order) {
            // `Display` of an f64 is the shortest text that parses back to the same bits.
            return format!("{tag}:{}:{created}:{}", score_of(order, m), m.id);
        }
        match order {
            MemoryOrder::Priority => {
                format!("p:{}:{}:{created}:{}", u8::from(m.pinned), m.priority, m.id)
            }
            MemoryOrder::AccessCount => format!("a:{}:{created}:{}", m.access_count, m.id),
            MemoryOrder::Updated => format!("u:{}:{}", ts(&m.updated_at), m.id),
            _ => encode_cursor(created, &m.id),
        }
    }

    /// Reads a cursor made by [`MemoryCursor::of`] for the same order; anything else is
    /// `invalid_input` on `after`.
    pub fn parse(order: MemoryOrder, s: &str) -> Result<MemoryCursor> {
        Self::position(order, s).map(MemoryCursor)
    }

    fn position(order: MemoryOrder, s: &str) -> Result<Position> {
        let int = |v: &str| v.parse::<i64>().map_err(|_| malformed());
        // `tag:` then `n` fields separated by `:`; the last (the id) may hold `:` itself.
        let fields = |tag: &str, n: usize| -> Result<Vec<&str>> {
            let rest = s
                .strip_prefix(tag)
                .and_then(|r| r.strip_prefix(':'))
                .ok_or_else(malformed)?;
            let parts: Vec<&str> = rest.splitn(n, ':').collect();
            if parts.len() == n {
                Ok(parts)
            } else {
                Err(malformed())
            }
        };
        if let Some((tag, expr)) = score_order(order) {
            let [score, created, id] = fields(tag, 3)?[..] else {
                return Err(malformed());
            };
            let score = score
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(malformed)?;
            return Ok(Position::Score {
                expr,
                score,
                created: int(created)?,
                id: id.to_owned(),
            });
        }
        match order {
            MemoryOrder::Priority => {
                let [pinned, priority, created, id] = fields("p", 4)?[..] else {
                    return Err(malformed());
                };
                let pinned = match pinned {
                    "0" => false,
                    "1" => true,
                    _ => return Err(malformed()),
                };
                Ok(Position::Priority {
                    pinned,
                    priority: int(priority)?,
                    created: int(created)?,
                    id: id.to_owned(),
                })
            }
            MemoryOrder::AccessCount => {
                let [count, created, id] = fields("a", 3)?[..] else {
                    return Err(malformed());
                };
                Ok(Position::AccessCount {
                    count: int(count)?,
                    created: int(created)?,
                    id: id.to_owned(),
                })
            }
            MemoryOrder::Updated => {
                let [updated, id] = fields("u", 2)?[..] else {
                    return Err(malformed());
                };
                Ok(Position::Updated {
                    updated: int(updated)?,
                    id: id.to_owned(),
                })
            }
            _ => {
                let (created, id) = decode_cursor(s)?;
                Ok(Position::Recent { created, id })
            }
        }
    }

    /// The `WHERE` condition selecting rows after this position, with `?` placeholders,
    /// and its values in order. Every order sorts all its columns descending, so "after"
    /// is one row-value comparison (on PostgreSQL `false < true` for `pinned`, as 0 < 1 on
    /// SQLite, and `id` compares bytewise under its "C" collation).
    pub fn condition(self) -> (String, Vec<CursorValue>) {
        use CursorValue::{Bool, Float, Int, Text};
        match self.0 {
            Position::Recent { created, id } => (
                "(created_at, id) < (?, ?)".into(),
                vec![Int(created), Text(id)],
            ),
            Position::Priority {
                pinned,
                priority,
                created,
                id,
            } => (
                "(pinned, priority, created_at, id) < (?, ?, ?, ?)".into(),
                vec![Bool(pinned), Int(priority), Int(created), Text(id)],
            ),
            Position::Score {
                expr,
                score,
                created,
                id,
            } => (
                format!("({expr}, created_at, id) < (?, ?, ?)"),
                vec![Float(score), Int(created), Text(id)],
            ),
            Position::AccessCount { count, created, id } => (
                "(access_count, created_at, id) < (?, ?, ?)".into(),
                vec![Int(count), Int(created), Text(id)],
            ),
            Position::Updated { updated, id } => (
                "(updated_at, id) < (?, ?)".into(),
                vec![Int(updated), Text(id)],
            ),
        }
    }
}
