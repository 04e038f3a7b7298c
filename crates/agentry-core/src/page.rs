//! Cursor pagination, one shape for every list that can grow: the caller
//! asks for `limit` items `after` a cursor and gets `{data, next_cursor}`;
//! `next_cursor` is absent on the last page. A cursor is the sort key of
//! the last item it saw, `<milliseconds>_<id>` ([`CURSOR_PATTERN`]; callers
//! pass it back as they got it), so pages are read with a keyset
//! condition, never an offset: items added or removed meanwhile shift
//! nothing. Any cursor of that form is accepted: it only says where a page
//! starts, and every page is filtered by the caller's access again.
//!
//! Must not: know what is listed (the store orders and filters); a cursor
//! is no capability — every page is filtered by the caller's access again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

/// Items per page unless the caller asks otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items a page may hold.
pub const MAX_LIMIT: u32 = 200;

/// The form of every cursor: a time (at most 18 digits, so it always fits
/// an `i64`), `_`, and an id. An empty `after` asks for the first page.
pub const CURSOR_PATTERN: &str = "^(-?[0-9]{1,18}_[A-Za-z0-9_-]{1,200})?$";

/// Where a page starts: after the item with this sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn new(at_ms: i64, id: &str) -> Self {
        Self { at_ms, id: id.to_owned() }
    }

    /// The sort key a store's keyset condition takes.
    pub fn key(&self) -> (i64, &str) {
        (self.at_ms, &self.id)
    }

    /// The form handed to callers ([`CURSOR_PATTERN`]).
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at_ms, self.id)
    }

    /// A cursor of [`CURSOR_PATTERN`]'s form, or one of the base64 form
    /// earlier versions handed out.
    fn decode(text: &str) -> Option<Self> {
        Self::decode_current(text).or_else(|| Self::decode_legacy(text))
    }

    fn decode_current(text: &str) -> Option<Self> {
        let (at_ms, id) = text.split_once('_')?;
        let digits = at_ms.strip_prefix('-').unwrap_or(at_ms);
        let well_formed = (1..=18).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (1..=200).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        well_formed.then(|| Some(Self { at_ms: at_ms.parse().ok()?, id: id.to_owned() })).flatten()
    }

    fn decode_legacy(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at_ms, id) = text.split_once(':')?;
        Some(Self { at_ms: at_ms.parse().ok()?, id: id.to_owned() }).filter(|c| !c.id.is_empty() && c.id.len() <= 200)
    }
}

/// One page's request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_LIMIT, after: None }
    }
}

impl PageRequest {
    /// `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and `after`
    /// (a `next_cursor` this API gave) as the caller sent them.
    pub fn parse(limit: Option<i64>, after: Option<&str>) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(limit) => {
                u32::try_from(limit).ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| Error::invalid(format!("'limit' must be from 1 to {MAX_LIMIT}"), "limit"))?
            }
        };
        let after = match after.filter(|a| !a.is_empty()) {
            None => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| Error::invalid("'after' must be a next_cursor from an earlier page of this list", "after"))?),
        };
        Ok(Self { limit, after })
    }

    /// The sort key to start after, if any.
    pub fn after_key(&self) -> Option<(i64, &str)> {
        self.after.as_ref().map(Cursor::key)
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page of `rows` (fetched with [`PageRequest::fetch`], in order),
    /// each turned into `T`, with the cursor of its last row when more follow.
    pub fn page<R, T>(&self, mut rows: Vec<R>, key: impl Fn(&R) -> Cursor, view: impl FnMut(R) -> T) -> Page<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = rows.last().filter(|_| more).map(|row| key(row).encode());
        Page { data: rows.into_iter().map(view).collect(), next_cursor }
    }
}

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let cursor = Cursor::new(1_796_515_200_000, "01a24b46-c144-754f-9834-ff577c795aa4");
        let request = PageRequest::parse(Some(10), Some(&cursor.encode())).expect("a cursor this API made");
        assert_eq!(request, PageRequest { limit: 10, after: Some(cursor) });
        let legacy = URL_SAFE_NO_PAD.encode("1796515200000:01a24b46-c144-754f-9834-ff577c795aa4");
        assert_eq!(PageRequest::parse(None, Some(&legacy)).ok().and_then(|r| r.after), Some(Cursor::new(1_796_515_200_000, "01a24b46-c144-754f-9834-ff577c795aa4")));
        for bad in ["not base64!", "bm8gY29sb24", "eDox", "12_", "_id", "1234567890123456789_x", "1_a b"] {
            assert!(matches!(PageRequest::parse(None, Some(bad)), Err(Error::Invalid { param: Some(p), .. }) if p == "after"), "{bad}");
        }
        for limit in [0, -1, 201, i64::MAX] {
            assert!(matches!(PageRequest::parse(Some(limit), None), Err(Error::Invalid { param: Some(p), .. }) if p == "limit"), "{limit}");
        }
        assert_eq!(PageRequest::parse(None, Some("")).map(|r| r.limit).ok(), Some(DEFAULT_LIMIT));
    }

    #[test]
    fn a_page_says_whether_more_follow() {
        let request = PageRequest { limit: 2, after: None };
        let key = |n: &i64| Cursor::new(*n, "id");
        let full = request.page(vec![3, 2, 1], key, |n| n);
        assert_eq!(full.data, [3, 2]);
        assert_eq!(full.next_cursor, Some(Cursor::new(2, "id").encode()));
        let last = request.page(vec![1, 0], key, |n| n);
        assert_eq!((last.data, last.next_cursor), (vec![1, 0], None));
    }
}
