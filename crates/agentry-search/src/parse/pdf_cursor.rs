//! A cursor over lopdf's token grammar: the little that reading
//! cross-reference sections and object headers needs (lopdf's own parser
//! is private), each rule restated from lopdf's.
//!
//! Must not: build objects.

use pdf_extract::ObjectId;

/// A cursor over lopdf's token grammar, the little the sections need.
pub(super) struct Cursor<'b> {
    pub(super) bytes: &'b [u8],
    pub(super) at: usize,
}

impl Cursor<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    pub(super) fn tag(&mut self, tag: &[u8]) -> bool {
        let found = self.bytes.get(self.at..).is_some_and(|rest| rest.starts_with(tag));
        if found {
            self.at += tag.len();
        }
        found
    }

    pub(super) fn eol(&mut self) -> bool {
        self.tag(b"\r\n") || self.tag(b"\n") || self.tag(b"\r")
    }

    /// Digits read as `T` (`None`, having moved, when they overflow it).
    pub(super) fn unsigned<T: std::str::FromStr>(&mut self) -> Option<T> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok()
    }

    /// lopdf's `space`: whitespace and `%` comments ended by an end of line.
    pub(super) fn space(&mut self) {
        loop {
            let start = self.at;
            while self.peek().is_some_and(|c| b" \t\n\r\0\x0C".contains(&c)) {
                self.at += 1;
            }
            if self.peek() == Some(b'%') {
                let mark = self.at;
                while self.peek().is_some_and(|c| c != b'\r' && c != b'\n') {
                    self.at += 1;
                }
                if !self.eol() {
                    self.at = mark;
                    return;
                }
            }
            if self.at == start {
                return;
            }
        }
    }

    /// lopdf's reference: `space`, digits, `space`, digits, `space`, `R`.
    pub(super) fn reference(&mut self) -> Option<ObjectId> {
        self.space();
        let number = self.unsigned::<u32>()?;
        self.space();
        let generation = self.unsigned::<u16>()?;
        self.space();
        self.tag(b"R").then_some((number, generation))
    }

    /// `first count`, an optional space and an end of line.
    pub(super) fn subsection_header(&mut self) -> Option<(usize, u32)> {
        let first = self.unsigned::<usize>()?;
        if !self.tag(b" ") {
            return None;
        }
        let count = self.unsigned::<u32>()?;
        self.tag(b" ");
        self.eol().then_some((first, count))
    }

    /// One 20-byte entry: offset, generation, `n` or `f`, a two-byte end.
    pub(super) fn entry(&mut self) -> Option<(u32, u32, bool)> {
        let mark = self.at;
        let parsed = (|| {
            let offset = self.unsigned::<u32>()?;
            self.tag(b" ").then_some(())?;
            let generation = self.unsigned::<u32>()?;
            self.tag(b" ").then_some(())?;
            let in_use = match self.peek()? {
                b'n' => true,
                b'f' => false,
                _ => return None,
            };
            self.at += 1;
            (self.tag(b" \r") || self.tag(b" \n") || self.tag(b"\r\n")).then_some((offset, generation, in_use))
        })();
        if parsed.is_none() {
            self.at = mark;
        }
        parsed
    }
}
