//! Writing buckets, raw results and status changes directly, bypassing the writer: how
//! the tests and the benchmark lay down a simulated year of history in seconds.

use redb::ReadableTable;

use super::record::{Bucket, EventRecord, RawResult, Resolution};
use super::store::{self, CheckInfo, Store, StoreError};

/// A check's history to lay down at once.
#[derive(Debug, Default)]
pub struct Seed {
    pub name: String,
    pub kind: String,
    /// `(resolution, [(bucket index, bucket)])`.
    pub buckets: Vec<(Resolution, Vec<(u32, Bucket)>)>,
    pub raw: Vec<RawResult>,
    pub events: Vec<EventRecord>,
}

impl Store {
    /// Store a check's history in one transaction (replacing rows with the same keys).
    pub fn seed(&self, seed: &Seed) -> Result<(), StoreError> {
        if let Some(m) = self.in_memory() {
            m.seed(seed);
            return Ok(());
        }
        let Some(db) = self.db() else {
            return Ok(());
        };
        let tx = db.begin_write()?;
        {
            let mut checks = tx.open_table(store::CHECKS)?;
            let existing = checks
                .get(seed.name.as_str())?
                .and_then(|v| CheckInfo::decode(v.value()));
            let id = match existing {
                Some(i) => i.id,
                None => {
                    let ids: Vec<u32> = checks
                        .iter()?
                        .flatten()
                        .filter_map(|(_, v)| CheckInfo::decode(v.value()).map(|i| i.id))
                        .collect();
                    ids.into_iter().max().unwrap_or(0) + 1
                }
            };
            let mut first = u64::MAX;
            let mut last = 0;
            for (res, rows) in &seed.buckets {
                let mut t = tx.open_table(store::buckets(*res))?;
                for (i, b) in rows {
                    t.insert((id, *i), b.encode().as_slice())?;
                    first = first.min(res.start_ms(*i));
                    last = last.max(res.start_ms(*i));
                }
            }
            // Seeded hour and day buckets are complete: mark every seeded minute rolled up.
            let last_minute = seed
                .buckets
                .iter()
                .filter(|(res, _)| *res == Resolution::Minute)
                .flat_map(|(_, rows)| rows.iter().map(|(i, _)| *i))
                .max();
            if let Some(m) = last_minute {
                tx.open_table(store::ROLLED)?.insert(id, m)?;
            }
            let mut raw = tx.open_table(store::RAW)?;
            for (seq, r) in seed.raw.iter().enumerate() {
                raw.insert(
                    (id, seq as u64),
                    postcard::to_stdvec(r).unwrap_or_default().as_slice(),
                )?;
                last = last.max(r.at_ms);
            }
            let mut events = tx.open_table(store::EVENTS)?;
            for e in &seed.events {
                events.insert(
                    (id, e.at_ms),
                    postcard::to_stdvec(e).unwrap_or_default().as_slice(),
                )?;
            }
            let info = CheckInfo {
                id,
                kind: seed.kind.clone(),
                first_ms: first.min(last),
                last_ms: last,
            };
            checks.insert(
                seed.name.as_str(),
                postcard::to_stdvec(&info).unwrap_or_default().as_slice(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Bytes the tables hold and the pages they take, as redb counts them (in memory, the
    /// rows' bytes and their buffers): `(stored bytes, allocated bytes)`.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        if let Some(m) = self.in_memory() {
            return Ok(m.usage());
        }
        let Some(db) = self.db() else {
            return Ok((0, 0));
        };
        let tx = db.begin_write()?;
        let stats = tx.stats()?;
        let out = (
            stats.stored_bytes(),
            stats.allocated_pages() * stats.page_size() as u64,
        );
        tx.abort()?;
        Ok(out)
    }
}
