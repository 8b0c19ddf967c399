//! One consistent view of the store, with the queries the views, the API and the report
//! need: a redb read transaction of the file, or the in-memory tables' read lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLockReadGuard;

use redb::{ReadTransaction, ReadableTable};

use super::memory::Tables;
use super::record::{Bucket, EventRecord, RawResult, Resolution};
use super::store::{CHECKS, CheckInfo, EVENTS, RAW, ROLLED, SESSIONS, StoreError, buckets};

/// A view of everything committed when it was taken.
pub struct Reader<'s>(View<'s>);

enum View<'s> {
    File(ReadTransaction),
    Memory(RwLockReadGuard<'s, Tables>),
}

impl<'s> Reader<'s> {
    pub(super) fn file(tx: ReadTransaction) -> Self {
        Reader(View::File(tx))
    }

    pub(super) fn memory(tables: RwLockReadGuard<'s, Tables>) -> Self {
        Reader(View::Memory(tables))
    }

    /// The answer of the in-memory tables, or of the file.
    fn either<T>(
        &self,
        memory: impl FnOnce(&Tables) -> T,
        file: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.0 {
            View::Memory(t) => Ok(memory(t)),
            View::File(tx) => file(tx),
        }
    }

    /// Every check the store knows, by name.
    pub fn checks(&self) -> Result<BTreeMap<String, CheckInfo>, StoreError> {
        self.either(
            |t| t.checks(),
            |tx| {
                let t = tx.open_table(CHECKS)?;
                Ok(t.iter()?
                    .flatten()
                    .filter_map(|(k, v)| {
                        Some((k.value().to_string(), CheckInfo::decode(v.value())?))
                    })
                    .collect())
            },
        )
    }

    /// What the store knows of one check.
    pub fn check(&self, name: &str) -> Result<Option<CheckInfo>, StoreError> {
        self.either(
            |t| t.check(name),
            |tx| {
                let t = tx.open_table(CHECKS)?;
                Ok(t.get(name)?.and_then(|v| CheckInfo::decode(v.value())))
            },
        )
    }

    /// A check's buckets with index in `from..=to`, oldest first.
    pub fn buckets(
        &self,
        id: u32,
        res: Resolution,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, Bucket)>, StoreError> {
        self.either(
            |t| t.buckets(id, res, from, to),
            |tx| {
                let t = tx.open_table(buckets(res))?;
                Ok(t.range((id, from)..=(id, to))?
                    .flatten()
                    .map(|(k, v)| (k.value().1, Bucket::decode(v.value())))
                    .collect())
            },
        )
    }

    /// [`Reader::buckets`], with the minutes not rolled up yet (at most the last minute or
    /// two) added to the hour and day buckets, so that every resolution counts every
    /// committed run.
    pub fn buckets_complete(
        &self,
        id: u32,
        res: Resolution,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, Bucket)>, StoreError> {
        let mut rows = self.buckets(id, res, from, to)?;
        let tx = match &self.0 {
            // Memory counts every resolution at once.
            View::Memory(_) => return Ok(rows),
            View::File(tx) => tx,
        };
        if res == Resolution::Minute {
            return Ok(rows);
        }
        let t = tx.open_table(ROLLED)?;
        let after = match t.get(id)? {
            Some(m) => m.value() + 1,
            None => 0,
        };
        for (m, b) in self.buckets(id, Resolution::Minute, after, u32::MAX)? {
            let i = res.index(Resolution::Minute.start_ms(m));
            if !(from..=to).contains(&i) {
                continue;
            }
            match rows.binary_search_by_key(&i, |(j, _)| *j) {
                Ok(k) => rows[k].1.merge(&b),
                Err(k) => rows.insert(k, (i, b)),
            }
        }
        Ok(rows)
    }

    /// A check's newest raw results, newest first, at most `limit`.
    pub fn raw(&self, id: u32, limit: usize) -> Result<Vec<RawResult>, StoreError> {
        self.either(
            |t| t.raw(id, limit),
            |tx| {
                let t = tx.open_table(RAW)?;
                Ok(t.range((id, 0)..=(id, u64::MAX))?
                    .rev()
                    .flatten()
                    .filter_map(|(_, v)| postcard::from_bytes(v.value()).ok())
                    .take(limit)
                    .collect())
            },
        )
    }

    /// A check's status changes with time in `from_ms..to_ms`, oldest first, at most `limit`.
    pub fn events(
        &self,
        id: u32,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.either(
            |t| t.events(id, from_ms, to_ms, limit),
            |tx| {
                let t = tx.open_table(EVENTS)?;
                Ok(t.range((id, from_ms)..(id, to_ms))?
                    .flatten()
                    .filter_map(|(_, v)| postcard::from_bytes(v.value()).ok())
                    .take(limit)
                    .collect())
            },
        )
    }

    /// The latest status change before `ms` (the status a period starts in).
    pub fn event_before(&self, id: u32, ms: u64) -> Result<Option<EventRecord>, StoreError> {
        self.either(
            |t| t.event_before(id, ms),
            |tx| {
                let t = tx.open_table(EVENTS)?;
                Ok(t.range((id, 0)..(id, ms))?
                    .next_back()
                    .and_then(|r| r.ok())
                    .and_then(|(_, v)| postcard::from_bytes(v.value()).ok()))
            },
        )
    }

    /// Per check id, the last minute rolled up into hour and day buckets.
    pub fn rolled(&self) -> Result<HashMap<u32, u32>, StoreError> {
        self.either(
            // Memory counts every resolution at once: nothing waits.
            |_| HashMap::new(),
            |tx| {
                let t = tx.open_table(ROLLED)?;
                Ok(t.iter()?
                    .flatten()
                    .map(|(k, v)| (k.value(), v.value()))
                    .collect())
            },
        )
    }

    /// When healthd was running: `(start, last commit)` in ms, oldest first.
    pub fn sessions(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        self.either(
            |t| t.sessions(),
            |tx| {
                let t = tx.open_table(SESSIONS)?;
                Ok(t.iter()?
                    .flatten()
                    .map(|(k, v)| (k.value(), v.value()))
                    .collect())
            },
        )
    }
}
