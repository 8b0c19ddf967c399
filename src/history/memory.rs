//! The in-memory store (`[history] path` unset): each check's rows in a few encoded
//! [`Log`]s behind one lock, with the same tables and answers as the file.
//!
//! The file store is redb: a copy-on-write B-tree, where a commit of a thousand scattered
//! checks copies nearly every leaf and the old pages come back only commits later. Kept in
//! memory, that was most of what history cost (at 10,000 checks, 6.7 MiB of written pages
//! and the commit's work on top, against about 2 MB of rows). Memory needs none of it: no
//! crash to survive, no reader in another process. Here a commit appends a run's bytes to
//! its check's rows under a write lock held for the batch; readers take the read lock for
//! one consistent view. Hour and day buckets are counted with the minute at once (the file
//! rolls them up later only to touch fewer pages).

use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::limit::{self, Trimmed};
use super::log::Log;
use super::record::{Bucket, EventRecord, RawResult, Resolution};
use super::seed::Seed;
use super::store::CheckInfo;
use super::writer::Batch;
use crate::config::HistoryConfig;

/// Everything kept of one check.
#[derive(Debug, Default)]
pub(super) struct Check {
    /// Index into [`Tables::kinds`].
    kind: u16,
    first_ms: u64,
    last_ms: u64,
    /// The newest runs, oldest first.
    pub(super) raw: Log<RawResult>,
    /// `(bucket index, bucket)` per [`Resolution::ALL`], by index.
    pub(super) buckets: [Log<(u32, Bucket)>; 3],
    /// Status changes by time.
    pub(super) events: Log<EventRecord>,
}

impl Check {
    /// `(rows, (bytes used, bytes allocated))` of each table: raw results, minute, hour and
    /// day buckets, status changes.
    pub(super) fn tables(&self) -> [(usize, (usize, usize)); 5] {
        let [m, h, d] = &self.buckets;
        [
            (self.raw.len(), self.raw.usage()),
            (m.len(), m.usage()),
            (h.len(), h.usage()),
            (d.len(), d.usage()),
            (self.events.len(), self.events.usage()),
        ]
    }

    /// Bytes the check's entry and rows take.
    pub(super) fn bytes(&self) -> usize {
        let rows: usize = self.tables().iter().map(|(_, (_, held))| held).sum();
        rows + std::mem::size_of::<Check>()
    }
}

/// What a commit keeps: raw results per check, and bytes for every check's entry and rows
/// (`[history] raw_results` and `memory_limit`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub raw: usize,
    pub bytes: u64,
}

/// The tables.
#[derive(Debug, Default)]
pub struct Tables {
    /// Check name → id.
    names: BTreeMap<Box<str>, u32>,
    /// By id (`checks[id]`); a forgotten check leaves `None`, ids are not reused. Boxed:
    /// the table's spare capacity costs a pointer per slot, not a check.
    checks: Vec<Option<Box<Check>>>,
    /// Session start → last commit (ms).
    sessions: BTreeMap<u64, u64>,
    /// Every kind named (a handful, so a check keeps an index instead of a string).
    kinds: Vec<Box<str>>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct Memory(RwLock<Tables>);

impl Memory {
    pub fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a batch: runs to the raw ring and to their buckets, status changes to the log,
    /// each check then fitted into its share of the limit (what that dropped is returned);
    /// `session` was running at `now_ms`.
    pub fn commit(&self, batch: &Batch, bounds: Bounds, session: u64, now_ms: u64) -> Trimmed {
        let mut t = self.write();
        let mut trimmed = Trimmed::default();
        for (name, kind, r) in batch.runs() {
            let (c, known) = t.touch(&name, &kind, Some(r.at_ms));
            c.raw.push_tight(&r);
            if c.raw.len() > bounds.raw {
                c.raw.drop_oldest(c.raw.len() - bounds.raw);
            }
            let mut add = Bucket::default();
            add.add(r.level, r.reason.as_deref(), r.latency_us);
            for (res, rows) in Resolution::ALL.into_iter().zip(&mut c.buckets) {
                merge(rows, res.index(r.at_ms), &add);
            }
            trimmed += limit::fit(c, limit::share(bounds.bytes, known));
        }
        for (name, kind, e) in batch.changes() {
            // A change is a result's time too: a check first seen by its change (its run is
            // in the next batch) is not taken for one without results.
            let (c, known) = t.touch(&name, &kind, Some(e.at_ms));
            insert_event(&mut c.events, &e);
            trimmed += limit::fit(c, limit::share(bounds.bytes, known));
        }
        t.sessions.insert(session, now_ms);
        trimmed
    }

    /// Delete what is past its retention at `now_ms`, and the checks with nothing left.
    pub fn prune(&self, config: &HistoryConfig, now_ms: u64) {
        let cut = |keep: Duration| now_ms.saturating_sub(keep.as_millis() as u64);
        let keeps = [config.minutes, config.hours, config.days];
        let longest = cut(config.days.max(config.events));
        let mut t = self.write();
        let Tables {
            names,
            checks,
            sessions,
            ..
        } = &mut *t;
        for slot in checks.iter_mut() {
            let Some(c) = slot else { continue };
            if c.last_ms < longest {
                *slot = None;
                continue;
            }
            for ((res, rows), keep) in Resolution::ALL.into_iter().zip(&mut c.buckets).zip(keeps) {
                let before = res.index(cut(keep));
                rows.drop_oldest_while(|(i, _)| *i < before);
            }
            let before = cut(config.events);
            c.events.drop_oldest_while(|e| e.at_ms < before);
        }
        names.retain(|_, id| checks[*id as usize].is_some());
        let before = cut(config.days);
        sessions.retain(|_, end| *end >= before);
    }

    /// Delete everything kept for the named checks; returns the names that had history.
    pub fn forget(&self, names: &[String]) -> Vec<String> {
        let mut t = self.write();
        let mut gone = Vec::new();
        for name in names {
            if let Some(id) = t.names.remove(name.as_str()) {
                t.checks[id as usize] = None;
                gone.push(name.clone());
            }
        }
        gone
    }

    /// Store a check's history at once (replacing rows with the same keys).
    pub fn seed(&self, seed: &Seed) {
        let mut t = self.write();
        let (c, _) = t.touch(&seed.name, &seed.kind, None);
        let mut first = u64::MAX;
        let mut last = 0;
        for (res, rows) in &seed.buckets {
            let log = &mut c.buckets[*res as usize];
            let mut all: BTreeMap<u32, Bucket> = log.iter().collect();
            for (i, b) in rows {
                all.insert(*i, b.clone());
                first = first.min(res.start_ms(*i));
                last = last.max(res.start_ms(*i));
            }
            log.replace(&all.into_iter().collect::<Vec<_>>());
        }
        if !seed.raw.is_empty() {
            c.raw.replace(&seed.raw);
        }
        for r in &seed.raw {
            last = last.max(r.at_ms);
        }
        for e in &seed.events {
            insert_event(&mut c.events, e);
        }
        c.first_ms = first.min(last);
        c.last_ms = last;
    }

    /// Bytes the rows take, and bytes allocated for them and for each check's entry.
    pub fn usage(&self) -> (u64, u64) {
        let t = self.read();
        let slot = std::mem::size_of::<Option<Box<Check>>>();
        let names: usize = t.names.keys().map(|n| n.len() + 24 + slot).sum();
        let mut out = (0, names as u64);
        for c in t.checks.iter().flatten() {
            out.0 += c.tables().iter().map(|(_, (used, _))| used).sum::<usize>() as u64;
            out.1 += c.bytes() as u64;
        }
        out
    }
}

impl Tables {
    /// The check named `name` (created on first sight), its kind and time span brought up
    /// to date with a run at `at_ms`; and how many checks the store knows, this one counted.
    fn touch(&mut self, name: &str, kind: &str, at_ms: Option<u64>) -> (&mut Check, usize) {
        let id = match self.names.get(name) {
            Some(id) => *id as usize,
            None => {
                let id = self.checks.len().max(1);
                self.checks.resize_with(id + 1, || None);
                self.names.insert(name.into(), id as u32);
                let at = at_ms.unwrap_or(0);
                self.checks[id] = Some(Box::new(Check {
                    first_ms: at,
                    last_ms: at,
                    ..Check::default()
                }));
                id
            }
        };
        let kind = match self.kinds.iter().position(|k| **k == *kind) {
            Some(k) => k,
            None => {
                self.kinds.push(kind.into());
                self.kinds.len() - 1
            }
        } as u16;
        let known = self.names.len();
        let c = self.checks[id].get_or_insert_with(Box::default);
        c.kind = kind;
        if let Some(at) = at_ms {
            c.first_ms = c.first_ms.min(at);
            c.last_ms = c.last_ms.max(at);
        }
        (c, known)
    }

    fn get(&self, id: u32) -> Option<&Check> {
        self.checks.get(id as usize)?.as_deref()
    }

    fn info(&self, id: u32) -> Option<CheckInfo> {
        self.get(id).map(|c| CheckInfo {
            id,
            kind: self
                .kinds
                .get(c.kind as usize)
                .map_or(String::new(), |k| k.to_string()),
            first_ms: c.first_ms,
            last_ms: c.last_ms,
        })
    }

    pub fn checks(&self) -> BTreeMap<String, CheckInfo> {
        let infos = self.names.iter();
        infos
            .filter_map(|(name, id)| Some((name.to_string(), self.info(*id)?)))
            .collect()
    }

    pub fn check(&self, name: &str) -> Option<CheckInfo> {
        self.info(*self.names.get(name)?)
    }

    /// A check's buckets with index in `from..=to`, oldest first (every resolution is
    /// complete: nothing waits to be rolled up).
    pub fn buckets(&self, id: u32, res: Resolution, from: u32, to: u32) -> Vec<(u32, Bucket)> {
        let Some(c) = self.get(id) else { return vec![] };
        let rows = c.buckets[res as usize]
            .iter()
            .skip_while(|(i, _)| *i < from);
        rows.take_while(|(i, _)| *i <= to).collect()
    }

    /// A check's newest raw results, newest first, at most `limit`.
    pub fn raw(&self, id: u32, limit: usize) -> Vec<RawResult> {
        let Some(c) = self.get(id) else { return vec![] };
        c.raw.rows().into_iter().rev().take(limit).collect()
    }

    /// A check's status changes in `from_ms..to_ms`, oldest first, at most `limit`.
    pub fn events(&self, id: u32, from_ms: u64, to_ms: u64, limit: usize) -> Vec<EventRecord> {
        let Some(c) = self.get(id) else { return vec![] };
        let rows = c.events.iter().skip_while(|e| e.at_ms < from_ms);
        rows.take_while(|e| e.at_ms < to_ms).take(limit).collect()
    }

    /// The latest status change before `ms`.
    pub fn event_before(&self, id: u32, ms: u64) -> Option<EventRecord> {
        let before = self.get(id)?.events.iter().take_while(|e| e.at_ms < ms);
        before.last()
    }

    pub fn sessions(&self) -> Vec<(u64, u64)> {
        self.sessions.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

/// Add `add` to bucket `index`: the newest bucket (the usual case, a run of the current
/// minute), a new one after it, or (a late run) one among the older ones.
fn merge(rows: &mut Log<(u32, Bucket)>, index: u32, add: &Bucket) {
    match rows.newest() {
        Some((i, mut b)) if i == index => {
            b.merge(add);
            rows.set_newest(&(i, b));
        }
        Some((i, _)) if i > index => {
            let mut all = rows.rows();
            match all.binary_search_by_key(&index, |(j, _)| *j) {
                Ok(k) => all[k].1.merge(add),
                Err(k) => all.insert(k, (index, add.clone())),
            }
            rows.replace(&all);
        }
        _ => rows.push_tight(&(index, add.clone())),
    }
}

/// Add a status change in time order.
fn insert_event(events: &mut Log<EventRecord>, e: &EventRecord) {
    if events.newest().is_none_or(|n| n.at_ms <= e.at_ms) {
        return events.push_tight(e);
    }
    let mut all = events.rows();
    let k = all.partition_point(|x| x.at_ms <= e.at_ms);
    all.insert(k, e.clone());
    events.replace(&all);
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
