//! The embedded store: one redb file (or the in-memory tables of [`super::memory`]), its
//! tables, and retention. Reading is [`super::reader`]'s, writing [`super::writer`]'s.
//!
//! redb is a pure-Rust, copy-on-write B-tree store with ACID transactions and checksummed
//! commits: a process killed at any moment leaves the last committed transaction. It is
//! opened in `SingleWriter` mode, so `healthd report` can open the same file read-only
//! while the daemon writes it.
//!
//! Keys start with the check's numeric id (names are mapped once in `checks`), so one
//! check's rows are contiguous: a check's history is one range scan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::memory::Memory;
pub use super::reader::Reader;
use super::record::Resolution;
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
    Memory(Memory),
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
        Store {
            handle: Handle::Memory(Memory::default()),
            path: None,
        }
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

    /// The file, when writable.
    pub(super) fn db(&self) -> Option<&Database> {
        match &self.handle {
            Handle::Write(db) => Some(db),
            Handle::Read(_) | Handle::Memory(_) => None,
        }
    }

    /// The in-memory tables, when history is kept in memory.
    pub(super) fn in_memory(&self) -> Option<&Memory> {
        match &self.handle {
            Handle::Memory(m) => Some(m),
            Handle::Write(_) | Handle::Read(_) => None,
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
    pub fn read(&self) -> Result<Reader<'_>, StoreError> {
        let tx = match &self.handle {
            Handle::Write(db) => db.begin_read()?,
            Handle::Read(db) => db.begin_read()?,
            Handle::Memory(m) => return Ok(Reader::memory(m.read())),
        };
        Ok(Reader::file(tx))
    }

    /// Delete what is past its retention at `now_ms`, and the checks with nothing left.
    pub fn prune(&self, config: &HistoryConfig, now_ms: u64) -> Result<(), StoreError> {
        if let Some(m) = self.in_memory() {
            m.prune(config, now_ms);
            return Ok(());
        }
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
        if let Some(m) = self.in_memory() {
            return Ok(m.forget(names));
        }
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
