//! The in-memory store's storage: redb's "file" kept in fixed-size pages allocated when
//! first written.
//!
//! redb's own `InMemoryBackend` keeps the file in one `Vec<u8>`: every growth of the file
//! may reallocate it, which doubles its capacity and for a moment holds the old and the new
//! copy (a 37.8 MiB allocation at 10,000 checks), and every byte of the file's length is
//! zero-filled and resident even where redb never wrote. Here the file is a table of
//! [`PAGE`]-byte pages: growing it only lengthens the table, a page costs memory once
//! something is written into it, and a shrink frees the pages past the end.

use std::io;
use std::sync::RwLock;

use redb::StorageBackend;

/// Bytes per page of the in-memory file.
const PAGE: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Pages {
    len: u64,
    /// `None`: never written, reads as zeros.
    pages: Vec<Option<Box<[u8]>>>,
}

/// A redb storage backend in memory, in pages allocated on first write.
#[derive(Debug, Default)]
pub struct PagedMemory(RwLock<Pages>);

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "offset past the in-memory file",
    )
}

/// `(page, offset in page, bytes)` pieces of the range `offset..offset + len`.
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let mut at = offset;
    let end = offset + len as u64;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let page = (at / PAGE as u64) as usize;
        let within = (at % PAGE as u64) as usize;
        let n = (PAGE - within).min((end - at) as usize);
        at += n as u64;
        Some((page, within, n))
    })
}

impl PagedMemory {
    fn pages(&self) -> std::sync::RwLockReadGuard<'_, Pages> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn pages_mut(&self) -> std::sync::RwLockWriteGuard<'_, Pages> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of pages allocated (what the store costs in memory).
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.pages().pages.iter().flatten().count() * PAGE
    }
}

impl StorageBackend for PagedMemory {
    fn len(&self) -> io::Result<u64> {
        Ok(self.pages().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let p = self.pages();
        if offset + out.len() as u64 > p.len {
            return Err(out_of_range());
        }
        let mut done = 0;
        for (page, within, n) in pieces(offset, out.len()) {
            let dst = &mut out[done..done + n];
            match &p.pages[page] {
                Some(bytes) => dst.copy_from_slice(&bytes[within..within + n]),
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut p = self.pages_mut();
        let count = len.div_ceil(PAGE as u64) as usize;
        p.pages.resize_with(count, || None);
        p.pages.shrink_to(count);
        // A shrink keeps the last page: what lay past the new end must read as zeros when
        // the file grows again.
        let tail = (len % PAGE as u64) as usize;
        if len < p.len
            && tail > 0
            && let Some(Some(last)) = p.pages.last_mut()
        {
            last[tail..].fill(0);
        }
        p.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut p = self.pages_mut();
        if offset + data.len() as u64 > p.len {
            return Err(out_of_range());
        }
        let mut done = 0;
        for (page, within, n) in pieces(offset, data.len()) {
            let bytes = p.pages[page].get_or_insert_with(|| vec![0; PAGE].into_boxed_slice());
            bytes[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_back_across_boundaries_and_zero_past_a_shrink() {
        let m = PagedMemory::default();
        m.set_len(3 * PAGE as u64).unwrap();
        assert_eq!(m.allocated(), 0, "growing allocates nothing");
        let data: Vec<u8> = (0..PAGE + 10).map(|i| (i % 251) as u8 + 1).collect();
        m.write(PAGE as u64 - 5, &data).unwrap();
        assert_eq!(m.allocated(), 3 * PAGE, "the pages written into");
        let mut out = vec![0; data.len() + 10];
        m.read(PAGE as u64 - 10, &mut out).unwrap();
        assert_eq!(&out[..5], &[0; 5]);
        assert_eq!(&out[5..5 + data.len()], &data[..]);
        assert_eq!(&out[5 + data.len()..], &[0; 5]);
        // Shrink into the second page, grow again: the cut part reads as zeros.
        m.set_len(PAGE as u64 + 3).unwrap();
        assert_eq!(m.allocated(), 2 * PAGE, "the pages past the end are freed");
        m.set_len(2 * PAGE as u64).unwrap();
        let mut tail = vec![1; 10];
        m.read(PAGE as u64 + 3, &mut tail).unwrap();
        assert_eq!(tail, vec![0; 10]);
        assert!(m.read(2 * PAGE as u64 - 1, &mut [0; 2]).is_err());
        assert!(m.write(2 * PAGE as u64, &[1]).is_err());
    }
}
