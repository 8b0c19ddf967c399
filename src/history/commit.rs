//! The committing side of the writer: one transaction per batch.
//!
//! Every batch adds its runs to the raw ring and to the minute buckets (so a `kill -9`
//! loses no committed minute). Hour and day buckets are rolled up from a minute once it has
//! closed, in the transaction of the first batch after it, and the last rolled minute is
//! recorded per check in the same transaction: after a crash, the minutes past that mark
//! are rolled at the next commit, so every run is counted exactly once at every resolution.
//! Writing the coarse buckets once a minute per check instead of once a second keeps the
//! pages a commit touches (and so its cost) low.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use redb::{ReadableTable, Table};

use super::limit::Trimmed;
use super::memory::Bounds;
use super::record::{Bucket, RawResult, Resolution};
use super::store::{self, CheckInfo, Store, StoreError};
use super::writer::Batch;
use crate::config::HistoryConfig;

type Buckets<'t> = Table<'t, (u32, u32), &'static [u8]>;

/// The committing side: owns the id, sequence and rollup bookkeeping of the store.
pub struct Writer {
    store: Arc<Store>,
    raw_limit: u64,
    /// `[history] memory_limit` (the in-memory store only).
    memory_limit: u64,
    session: u64,
    /// What the store knows of each check, and whether that changed since it was last
    /// written (written with the rollup, once a minute: `last_result` is exact to the
    /// minute).
    infos: HashMap<String, (CheckInfo, bool)>,
    next_id: u32,
    next_seq: HashMap<u32, u64>,
    /// Per check id, the last minute added to the hour and day buckets.
    rolled: HashMap<u32, u32>,
    /// `(minute, check id)` written but not rolled up yet.
    open: BTreeSet<(u32, u32)>,
}

impl Writer {
    /// A writer starting a new session (a span of time healthd runs) at `now_ms`.
    pub fn new(
        store: Arc<Store>,
        config: &HistoryConfig,
        now_ms: u64,
    ) -> Result<Writer, StoreError> {
        let mut writer = Writer {
            store: store.clone(),
            raw_limit: config.raw_results as u64,
            memory_limit: config.memory_limit,
            session: now_ms,
            infos: HashMap::new(),
            next_id: 1,
            next_seq: HashMap::new(),
            rolled: HashMap::new(),
            open: BTreeSet::new(),
        };
        if store.in_memory().is_some() {
            // The tables keep their own ids, rings and buckets.
            return Ok(writer);
        }
        let reader = store.read()?;
        let infos: HashMap<String, (CheckInfo, bool)> = reader
            .checks()?
            .into_iter()
            .map(|(name, info)| (name, (info, false)))
            .collect();
        let rolled = reader.rolled()?;
        let mut open = BTreeSet::new();
        for (info, _) in infos.values() {
            let from = rolled.get(&info.id).map(|m| m + 1).unwrap_or(0);
            for (m, _) in reader.buckets(info.id, Resolution::Minute, from, u32::MAX)? {
                open.insert((m, info.id));
            }
        }
        writer.next_id = infos.values().map(|(i, _)| i.id + 1).max().unwrap_or(1);
        writer.infos = infos;
        writer.rolled = rolled;
        writer.open = open;
        Ok(writer)
    }

    /// Commit one batch in one transaction; `now_ms` ends the current session and decides
    /// which minutes have closed. Returns what the in-memory store's limit dropped.
    pub fn commit(&mut self, batch: &Batch, now_ms: u64) -> Result<Trimmed, StoreError> {
        if let Some(m) = self.store.in_memory() {
            let bounds = Bounds {
                raw: self.raw_limit as usize,
                bytes: self.memory_limit,
            };
            return Ok(m.commit(batch, bounds, self.session, now_ms));
        }
        let Some(db) = self.store.db() else {
            return Ok(Trimmed::default());
        };
        let tx = db.begin_write()?;
        {
            let mut checks = tx.open_table(store::CHECKS)?;
            let mut raw = tx.open_table(store::RAW)?;
            let mut minutes = tx.open_table(store::MINUTES)?;
            let mut coarse = [tx.open_table(store::HOURS)?, tx.open_table(store::DAYS)?];
            let runs: Vec<_> = batch.runs().collect();
            let mut by_check: BTreeMap<&str, (&str, Vec<&RawResult>)> = BTreeMap::new();
            for (check, kind, r) in &runs {
                by_check
                    .entry(check)
                    .or_insert((kind, Vec::new()))
                    .1
                    .push(r);
            }
            for (check, (kind, runs)) in by_check {
                let first = runs.iter().map(|r| r.at_ms).min();
                let last = runs.iter().map(|r| r.at_ms).max();
                let span = first.zip(last);
                let id = self.touch(&mut checks, check, kind, span)?;
                self.append_raw(&mut raw, id, &runs)?;
                let mut by_minute: BTreeMap<u32, Vec<&RawResult>> = BTreeMap::new();
                for r in &runs {
                    by_minute
                        .entry(Resolution::Minute.index(r.at_ms))
                        .or_default()
                        .push(r);
                }
                for (m, runs) in by_minute {
                    let mut add = Bucket::default();
                    for r in &runs {
                        add.add(r.level, r.reason.as_deref(), r.latency_us);
                    }
                    merge_into(&mut minutes, id, m, &add)?;
                    if self.rolled.get(&id).is_some_and(|r| m <= *r) {
                        // A late run for a minute already rolled up: straight to the coarse
                        // buckets as well.
                        roll(&mut coarse, id, m, &add)?;
                    } else {
                        self.open.insert((m, id));
                    }
                }
            }
            let mut events = tx.open_table(store::EVENTS)?;
            for (check, kind, e) in batch.changes() {
                // A change is a result's time too: a check first seen by its change (its run
                // is in the next batch) is not taken for one without results.
                let id = self.touch(&mut checks, &check, &kind, Some((e.at_ms, e.at_ms)))?;
                let mut at = e.at_ms;
                while events.get((id, at))?.is_some() {
                    at += 1;
                }
                let bytes = postcard::to_stdvec(&e).unwrap_or_default();
                events.insert((id, at), bytes.as_slice())?;
            }
            self.roll_closed(&mut checks, &minutes, &mut coarse, &tx, now_ms)?;
            let mut sessions = tx.open_table(store::SESSIONS)?;
            sessions.insert(self.session, now_ms)?;
        }
        tx.commit()?;
        Ok(Trimmed::default())
    }

    /// Add every minute that has closed by `now_ms` to its hour and day buckets.
    fn roll_closed(
        &mut self,
        checks: &mut Table<&str, &[u8]>,
        minutes: &Buckets,
        coarse: &mut [Buckets; 2],
        tx: &redb::WriteTransaction,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let current = Resolution::Minute.index(now_ms);
        let closed: Vec<(u32, u32)> = self.open.range(..(current, 0)).copied().collect();
        if closed.is_empty() {
            return Ok(());
        }
        let mut marks = tx.open_table(store::ROLLED)?;
        for (m, id) in closed {
            self.open.remove(&(m, id));
            if let Some(b) = minutes.get((id, m))? {
                roll(coarse, id, m, &Bucket::decode(b.value()))?;
            }
            let mark = self.rolled.entry(id).or_insert(m);
            *mark = (*mark).max(m);
            marks.insert(id, *mark)?;
        }
        for (name, (info, stale)) in self.infos.iter_mut().filter(|(_, (_, s))| *s) {
            let bytes = postcard::to_stdvec(&*info).unwrap_or_default();
            checks.insert(name.as_str(), bytes.as_slice())?;
            *stale = false;
        }
        Ok(())
    }

    /// The check's id (created on first sight) and its kind and time span (`(first,
    /// last)` of what came) brought up to date; written at once when new or when its kind
    /// changed, else with the next rollup.
    fn touch(
        &mut self,
        checks: &mut Table<&str, &[u8]>,
        name: &str,
        kind: &str,
        span: Option<(u64, u64)>,
    ) -> Result<u32, StoreError> {
        let (first, last) = (span.map(|s| s.0), span.map(|s| s.1));
        let ((info, stale), write_now) = match self.infos.get_mut(name) {
            Some(known) => {
                let changed = known.0.kind != kind;
                (known, changed)
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let at = first.unwrap_or(0);
                let info = CheckInfo {
                    id,
                    kind: String::new(),
                    first_ms: at,
                    last_ms: at,
                };
                (
                    self.infos.entry(name.to_string()).or_insert((info, false)),
                    true,
                )
            }
        };
        if info.kind != kind {
            info.kind = kind.to_string();
        }
        if let (Some(f), Some(l)) = (first, last) {
            info.first_ms = info.first_ms.min(f);
            info.last_ms = info.last_ms.max(l);
        }
        if write_now {
            let bytes = postcard::to_stdvec(&*info).unwrap_or_default();
            checks.insert(name, bytes.as_slice())?;
        } else {
            *stale = true;
        }
        Ok(info.id)
    }

    fn append_raw(
        &mut self,
        raw: &mut Table<(u32, u64), &[u8]>,
        id: u32,
        runs: &[&RawResult],
    ) -> Result<(), StoreError> {
        let first_write = !self.next_seq.contains_key(&id);
        let next = match self.next_seq.get(&id) {
            Some(n) => *n,
            None => raw
                .range((id, 0)..=(id, u64::MAX))?
                .next_back()
                .transpose()?
                .map(|(k, _)| k.value().1 + 1)
                .unwrap_or(0),
        };
        let mut seq = next;
        for r in runs {
            let bytes = postcard::to_stdvec(r).unwrap_or_default();
            raw.insert((id, seq), bytes.as_slice())?;
            if seq >= self.raw_limit && !first_write {
                raw.remove((id, seq - self.raw_limit))?;
            }
            seq += 1;
        }
        // The first write of a run of healthd also trims what a larger limit left.
        if first_write && seq > self.raw_limit {
            raw.retain_in((id, 0)..(id, seq - self.raw_limit), |_, _| false)?;
        }
        self.next_seq.insert(id, seq);
        Ok(())
    }
}

/// Add `add` to the check's bucket `index` (read, merge, write back).
fn merge_into(table: &mut Buckets, id: u32, index: u32, add: &Bucket) -> Result<(), StoreError> {
    let mut b = table
        .get((id, index))?
        .map(|v| Bucket::decode(v.value()))
        .unwrap_or_default();
    b.merge(add);
    table.insert((id, index), b.encode().as_slice())?;
    Ok(())
}

/// Add a minute's counts to the hour and day buckets holding it.
fn roll(coarse: &mut [Buckets; 2], id: u32, minute: u32, add: &Bucket) -> Result<(), StoreError> {
    let at = Resolution::Minute.start_ms(minute);
    for (res, table) in [Resolution::Hour, Resolution::Day].into_iter().zip(coarse) {
        merge_into(table, id, res.index(at), add)?;
    }
    Ok(())
}
