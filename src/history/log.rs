//! An append-mostly run of records kept encoded back to back in one buffer: the in-memory
//! store's row storage.
//!
//! A record costs its postcard bytes (a raw result about a dozen, a minute bucket about
//! twenty) instead of a struct with its own heap strings, and a check's rows are one
//! allocation per table. What the store does to rows is cheap here: append, replace the
//! newest row (a bucket still filling), drop the oldest (a ring, retention). Anything else
//! (a late row between older ones) decodes the run, edits it and encodes it again.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Records of type `T`, oldest first.
#[derive(Debug)]
pub struct Log<T> {
    bytes: Vec<u8>,
    /// Where the newest record starts.
    last: u32,
    len: u32,
    _rows: PhantomData<fn() -> T>,
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log {
            bytes: Vec::new(),
            last: 0,
            len: 0,
            _rows: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Log<T> {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held, and bytes allocated.
    pub fn usage(&self) -> (usize, usize) {
        (self.bytes.len(), self.bytes.capacity())
    }

    /// Add `row` as the newest record (the buffer grows by doubling: a batch).
    pub fn push(&mut self, row: &T) {
        self.append(row, Vec::reserve);
    }

    /// Add `row` as the newest record in a buffer grown only by what it needs: a check's
    /// rows, thousands of small buffers that mostly stay as they are.
    pub fn push_tight(&mut self, row: &T) {
        self.append(row, Vec::reserve_exact);
    }

    fn append(&mut self, row: &T, reserve: fn(&mut Vec<u8>, usize)) {
        // Encoding the store's plain records cannot fail.
        let Ok(bytes) = postcard::to_stdvec(row) else {
            return;
        };
        reserve(&mut self.bytes, bytes.len());
        self.last = self.bytes.len() as u32;
        self.bytes.extend_from_slice(&bytes);
        self.len += 1;
    }

    /// The newest record.
    pub fn newest(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        postcard::from_bytes(&self.bytes[self.last as usize..]).ok()
    }

    /// Replace the newest record with `row`.
    pub fn set_newest(&mut self, row: &T) {
        if !self.is_empty() {
            self.bytes.truncate(self.last as usize);
            self.len -= 1;
        }
        self.push_tight(row);
    }

    /// Every record, oldest first, decoded as the iterator goes.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            let (row, tail) = postcard::take_from_bytes::<T>(rest).ok()?;
            rest = tail;
            Some(row)
        })
    }

    /// Every record, oldest first.
    pub fn rows(&self) -> Vec<T> {
        self.iter().collect()
    }

    /// Drop the `n` oldest records.
    pub fn drop_oldest(&mut self, n: usize) {
        let mut left = n;
        self.drop_oldest_while(|_| {
            let go = left > 0;
            left = left.saturating_sub(1);
            go
        });
    }

    /// Drop the oldest records while `drop` says so (retention: rows by time). Decodes
    /// only the records it looks at.
    pub fn drop_oldest_while(&mut self, mut drop: impl FnMut(&T) -> bool) {
        self.drop_front(|row, _| drop(row));
        self.fit();
    }

    /// Drop the oldest records until at least `bytes` are freed or only `keep` are left, and
    /// give back the room they took; returns how many went.
    pub fn drop_oldest_bytes(&mut self, bytes: usize, keep: usize) -> usize {
        let mut can = self.len().saturating_sub(keep);
        let before = self.len();
        self.drop_front(|_, freed| {
            let go = freed < bytes && can > 0;
            can = can.saturating_sub(1);
            go
        });
        self.bytes.shrink_to_fit();
        before - self.len()
    }

    /// Drop the oldest records while `drop` (given a record and the bytes of those before
    /// it) says so.
    fn drop_front(&mut self, mut drop: impl FnMut(&T, usize) -> bool) {
        let mut rest = self.bytes.as_slice();
        let mut n = 0;
        while n < self.len {
            let freed = self.bytes.len() - rest.len();
            match postcard::take_from_bytes::<T>(rest) {
                Ok((row, tail)) if drop(&row, freed) => {
                    rest = tail;
                    n += 1;
                }
                Ok(_) => break,
                Err(_) => return self.clear(),
            }
        }
        if n == 0 {
            return;
        }
        if n == self.len {
            return self.clear();
        }
        let cut = self.bytes.len() - rest.len();
        self.bytes.drain(..cut);
        self.last -= cut as u32;
        self.len -= n;
    }

    /// Replace every record with `rows`.
    pub fn replace(&mut self, rows: &[T]) {
        self.clear();
        for r in rows {
            self.push(r);
        }
        self.bytes.shrink_to_fit();
    }

    pub fn clear(&mut self) {
        *self = Log::default();
    }

    /// Give back what a shrink left unused (a ring keeps what it will refill).
    fn fit(&mut self) {
        if self.bytes.capacity() > 2 * self.bytes.len() + 64 {
            self.bytes.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_replace_and_drop_in_order() {
        let mut log: Log<(u32, String)> = Log::default();
        assert!(log.newest().is_none());
        for i in 0..5 {
            log.push(&(i, format!("row {i}")));
        }
        assert_eq!(log.len(), 5);
        assert_eq!(log.newest(), Some((4, "row 4".into())));
        log.set_newest(&(4, "a longer row four".into()));
        assert_eq!(log.iter().last(), Some((4, "a longer row four".into())));
        assert_eq!(log.rows().len(), 5);
        log.drop_oldest(2);
        let rows: Vec<u32> = log.iter().map(|(i, _)| i).collect();
        assert_eq!(rows, [2, 3, 4]);
        assert_eq!(log.newest(), Some((4, "a longer row four".into())));
        log.push(&(5, String::new()));
        log.drop_oldest_while(|(i, _)| *i < 4);
        let rows: Vec<u32> = log.rows().into_iter().rev().map(|(i, _)| i).collect();
        assert_eq!(rows, [5, 4]);
        assert_eq!(log.newest(), Some((5, String::new())));
        log.replace(&[(7, "seven".into())]);
        assert_eq!(log.iter().collect::<Vec<_>>(), [(7, "seven".into())]);
        log.drop_oldest(9);
        assert!(log.is_empty());
        assert_eq!(log.usage().0, 0);
        for i in 0..10 {
            log.push(&(i, "0123456789".into()));
        }
        let row = log.usage().0 / 10;
        // Enough rows for 2.5 rows' bytes: three; then never below what is kept.
        assert_eq!(log.drop_oldest_bytes(row * 5 / 2, 1), 3);
        assert_eq!(log.usage(), (7 * row, 7 * row));
        assert_eq!(log.drop_oldest_bytes(usize::MAX, 2), 5);
        assert_eq!(
            log.rows().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [8, 9]
        );
        assert_eq!(log.drop_oldest_bytes(1, 2), 0);
    }
}
