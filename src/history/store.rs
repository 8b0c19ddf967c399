//! The embedded store: one redb file (or redb's in-memory backend), its tables, and the
//! reads every consumer shares. Writing is [`super::writer`]'s; retention is here.
//!
//! redb is a pure-Rust, copy-on-write B-tree store with ACID transactions and checksummed
//! commits: a process killed at any moment leaves the last committed transaction. It is
//! opened in `SingleWriter` mode, so `healthd report` can open the same file read-only
//! while the daemon writes it.
//!
//! Keys start with the check's numeric id (names are mapped once in `checks`), so one
//! check's rows are contiguous: a check's history is one range scan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::memory::PagedMemory;
use super::record::{Bucket, EventRecord, RawResult, Resolution};
use crate::config::HistoryConfig;

/// Check name → [`CheckInfo`].
pub(super) const CHECKS: TableDefinition<&str, &[u8]> = TableDefinition::new("checks");
/// (check id, sequence) → [`RawResult`]: the last `raw_results` runs of each check.
pub(super) const RAW: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("raw");
pub(super) const MINUTES: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("minutes");
pub(super) const HOURS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("hours");
pub(super) const DAYS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("days");
/// (check id, milliseconds) → [`EventRecord`]: the incident log.
pub(super) const EVENTS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("events");
/// Check id → the last minute rolled up into its hour and day buckets.
pub(super) const ROLLED: TableDefinition<u32, u32> = TableDefinition::new("rolled");
/// Session start → last commit of that session (ms): when healthd was running.
pub(super) const SESSIONS: TableDefinition<u64, u64> = TableDefinition::new("sessions");

/// The bucket table of a resolution.
pub(super) fn buckets(res: Resolution) -> TableDefinition<'static, (u32, u32), &'static [u8]> {
    match res {
        Resolution::Minute => MINUTES,
        Resolution::Hour => HOURS,
        Resolution::Day => DAYS,
    }
}

/// Page cache of the file store. redb's default (1 GiB) would let the cache grow far past
/// healthd's memory budget; the hot pages (the current buckets) are few.
const CACHE_BYTES: usize = 1024 * 1024;

/// What the store knows of a check by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckInfo {
    pub id: u32,
    pub kind: String,
    /// First and latest result kept (ms).
    pub first_ms: u64,
    pub last_ms: u64,
}

impl CheckInfo {
    pub(super) fn decode(bytes: &[u8]) -> Option<CheckInfo> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("{path}: in use by another healthd (stop it, or read it with `healthd report`)")]
    InUse { path: PathBuf },
    #[error("history store: {0}")]
    Db(#[from] redb::Error),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

enum Handle {
    Write(Database),
    Read(ReadOnlyDatabase),
}

/// The store, writable (the daemon, `healthd history prune`) or read-only (`healthd report`).
pub struct Store {
    handle: Handle,
    /// The file, or `None` in memory.
    pub path: Option<PathBuf>,
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

impl Store {
    /// The file at `path` (created if missing; its directory must exist).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = builder().create(path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.into() },
            source => StoreError::Open {
                path: path.into(),
                source,
            },
        })?;
        let store = Store {
            handle: Handle::Write(db),
            path: Some(path.into()),
        };
        store.create_tables()?;
        Ok(store)
    }

    /// A store that lives in memory only.
    pub fn memory() -> Store {
        // No other process can share memory: the default mode (byte-range locks are a
        // file's).
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(PagedMemory::default())
            .expect("an in-memory redb database opens");
        let store = Store {
            handle: Handle::Write(db),
            path: None,
        };
        // Creating tables in memory cannot fail short of allocation failure.
        let _ = store.create_tables();
        store
    }

    /// The file at `path`, read-only, also while a daemon writes it.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let db = builder()
            .open_read_only(path)
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        Ok(Store {
            handle: Handle::Read(db),
            path: Some(path.into()),
        })
    }

    /// The file at `path` for reading: read-only (also while a daemon writes it), or,
    /// when healthd was killed and the file needs redb's repair and no daemon has it
    /// open, opened for writing once so that the repair runs.
    pub fn open_for_reading(path: &Path) -> Result<Store, StoreError> {
        match Store::open_read_only(path) {
            Err(StoreError::Open {
                source: redb::DatabaseError::RepairAborted,
                ..
            }) => Store::open(path),
            other => other,
        }
    }

    /// The configured store: the file, or memory when `[history] path` is unset.
    pub fn of(config: &HistoryConfig) -> Result<Store, StoreError> {
        match &config.path {
            Some(p) => Store::open(p),
            None => Ok(Store::memory()),
        }
    }

    pub(super) fn db(&self) -> Option<&Database> {
        match &self.handle {
            Handle::Write(db) => Some(db),
            Handle::Read(_) => None,
        }
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let Some(db) = self.db() else {
            return Ok(());
        };
        let tx = db.begin_write()?;
        tx.open_table(CHECKS)?;
        tx.open_table(RAW)?;
        for res in Resolution::ALL {
            tx.open_table(buckets(res))?;
        }
        tx.open_table(EVENTS)?;
        tx.open_table(SESSIONS)?;
        tx.open_table(ROLLED)?;
        tx.commit()?;
        Ok(())
    }

    /// A consistent view of everything committed so far.
    pub fn read(&self) -> Result<Reader, StoreError> {
        let tx = match &self.handle {
            Handle::Write(db) => db.begin_read()?,
            Handle::Read(db) => db.begin_read()?,
        };
        Ok(Reader { tx })
    }

    /// Delete what is past its retention at `now_ms`, and the checks with nothing left.
    pub fn prune(&self, config: &HistoryConfig, now_ms: u64) -> Result<(), StoreError> {
        let Some(db) = self.db() else {
            return Ok(());
        };
        let cut = |keep: Duration| now_ms.saturating_sub(keep.as_millis() as u64);
        let tx = db.begin_write()?;
        {
            let mut checks = tx.open_table(CHECKS)?;
            let infos: Vec<(String, CheckInfo)> = checks
                .iter()?
                .flatten()
                .filter_map(|(k, v)| Some((k.value().to_string(), CheckInfo::decode(v.value())?)))
                .collect();
            for (res, keep) in [
                (Resolution::Minute, config.minutes),
                (Resolution::Hour, config.hours),
                (Resolution::Day, config.days),
            ] {
                let mut table = tx.open_table(buckets(res))?;
                let before = res.index(cut(keep));
                for (_, info) in &infos {
                    table.retain_in((info.id, 0)..(info.id, before), |_, _| false)?;
                }
            }
            let mut events = tx.open_table(EVENTS)?;
            for (_, info) in &infos {
                events.retain_in((info.id, 0)..(info.id, cut(config.events)), |_, _| false)?;
            }
            // A check whose newest result is older than every retention has nothing left
            // worth keeping: forget it (its raw results go with it).
            let longest = config.days.max(config.events);
            let mut raw = tx.open_table(RAW)?;
            let mut rolled = tx.open_table(ROLLED)?;
            for (name, info) in &infos {
                if info.last_ms < cut(longest) {
                    raw.retain_in((info.id, 0)..=(info.id, u64::MAX), |_, _| false)?;
                    rolled.remove(info.id)?;
                    checks.remove(name.as_str())?;
                }
            }
            let mut sessions = tx.open_table(SESSIONS)?;
            sessions.retain(|_, end| end >= cut(config.days))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Delete everything kept for the named checks; returns the names that had history.
    pub fn forget(&self, names: &[String]) -> Result<Vec<String>, StoreError> {
        let Some(db) = self.db() else {
            return Ok(vec![]);
        };
        let tx = db.begin_write()?;
        let mut gone = Vec::new();
        {
            let mut checks = tx.open_table(CHECKS)?;
            let mut raw = tx.open_table(RAW)?;
            let mut events = tx.open_table(EVENTS)?;
            let mut rolled = tx.open_table(ROLLED)?;
            let mut tables = [
                tx.open_table(MINUTES)?,
                tx.open_table(HOURS)?,
                tx.open_table(DAYS)?,
            ];
            for name in names {
                let Some(info) = checks
                    .remove(name.as_str())?
                    .and_then(|v| CheckInfo::decode(v.value()))
                else {
                    continue;
                };
                let id = info.id;
                raw.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                events.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                rolled.remove(id)?;
                for t in &mut tables {
                    t.retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
                }
                gone.push(name.clone());
            }
        }
        tx.commit()?;
        Ok(gone)
    }
}

/// A read transaction with the queries the views, the API and the report need.
pub struct Reader {
    tx: ReadTransaction,
}

impl Reader {
    /// Every check the store knows, by name.
    pub fn checks(&self) -> Result<BTreeMap<String, CheckInfo>, StoreError> {
        let t = self.tx.open_table(CHECKS)?;
        Ok(t.iter()?
            .flatten()
            .filter_map(|(k, v)| Some((k.value().to_string(), CheckInfo::decode(v.value())?)))
            .collect())
    }

    /// What the store knows of one check.
    pub fn check(&self, name: &str) -> Result<Option<CheckInfo>, StoreError> {
        let t = self.tx.open_table(CHECKS)?;
        Ok(t.get(name)?.and_then(|v| CheckInfo::decode(v.value())))
    }

    /// A check's buckets with index in `from..=to`, oldest first.
    pub fn buckets(
        &self,
        id: u32,
        res: Resolution,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, Bucket)>, StoreError> {
        let t = self.tx.open_table(buckets(res))?;
        Ok(t.range((id, from)..=(id, to))?
            .flatten()
            .map(|(k, v)| (k.value().1, Bucket::decode(v.value())))
            .collect())
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
        if res == Resolution::Minute {
            return Ok(rows);
        }
        let t = self.tx.open_table(ROLLED)?;
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
        let t = self.tx.open_table(RAW)?;
        Ok(t.range((id, 0)..=(id, u64::MAX))?
            .rev()
            .flatten()
            .filter_map(|(_, v)| postcard::from_bytes(v.value()).ok())
            .take(limit)
            .collect())
    }

    /// A check's status changes with time in `from_ms..to_ms`, oldest first, at most `limit`.
    pub fn events(
        &self,
        id: u32,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let t = self.tx.open_table(EVENTS)?;
        Ok(t.range((id, from_ms)..(id, to_ms))?
            .flatten()
            .filter_map(|(_, v)| postcard::from_bytes(v.value()).ok())
            .take(limit)
            .collect())
    }

    /// The latest status change before `ms` (the status a period starts in).
    pub fn event_before(&self, id: u32, ms: u64) -> Result<Option<EventRecord>, StoreError> {
        let t = self.tx.open_table(EVENTS)?;
        Ok(t.range((id, 0)..(id, ms))?
            .next_back()
            .and_then(|r| r.ok())
            .and_then(|(_, v)| postcard::from_bytes(v.value()).ok()))
    }

    /// Per check id, the last minute rolled up into hour and day buckets.
    pub fn rolled(&self) -> Result<std::collections::HashMap<u32, u32>, StoreError> {
        let t = self.tx.open_table(ROLLED)?;
        Ok(t.iter()?
            .flatten()
            .map(|(k, v)| (k.value(), v.value()))
            .collect())
    }

    /// When healthd was running: `(start, last commit)` in ms, oldest first.
    pub fn sessions(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let t = self.tx.open_table(SESSIONS)?;
        Ok(t.iter()?
            .flatten()
            .map(|(k, v)| (k.value(), v.value()))
            .collect())
    }
}
