//! Rendered bodies kept per snapshot: `/health` and `/metrics` are rendered at most once per
//! snapshot (and per variant), however many clients ask, so a flood of them costs a lookup
//! each instead of a render each — and cannot crowd the probe endpoints off the CPU.
//! `/metrics` goes further: a body younger than a second is served even when the snapshot
//! moved on (with thousands of checks it moves on every few milliseconds), and its gzip
//! form is compressed once, on the first scrape that accepts it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// One body per variant, valid while its key (the snapshot's sequence number and whatever
/// else the body depends on) is unchanged.
#[derive(Default)]
pub struct RenderCache {
    slots: Mutex<Vec<Slot>>,
}

struct Slot {
    key: Key,
    at: Instant,
    body: Rendered,
}

/// What a cached body depends on: the variant (endpoint and format) and the generation of
/// every input.
pub type Key = (u8, u64, u64);

/// A rendered body and, once asked for, its gzip form.
#[derive(Clone)]
pub struct Rendered {
    pub body: Bytes,
    gzip: Arc<OnceLock<Bytes>>,
}

impl Rendered {
    fn new(body: String) -> Rendered {
        Rendered {
            body: Bytes::from(body),
            gzip: Arc::default(),
        }
    }

    /// The body compressed with gzip (compressed on the first call, then kept).
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.body.len() / 8),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(&self.body);
                Bytes::from(enc.finish().unwrap_or_default())
            })
            .clone()
    }
}

impl RenderCache {
    /// The body for `key`, rendering it with `render` when the cached one is for another key.
    /// Concurrent misses may render twice; nobody waits for another's render.
    pub fn get_or_render(&self, key: Key, render: impl FnOnce() -> String) -> Bytes {
        self.recent_or_render(key, Duration::ZERO, render).body
    }

    /// The body for `key`, or the variant's body rendered less than `fresh_for` ago for an
    /// older key; otherwise `render`. Bounds the renders of a variant to one per `fresh_for`.
    pub fn recent_or_render(
        &self,
        key: Key,
        fresh_for: Duration,
        render: impl FnOnce() -> String,
    ) -> Rendered {
        if let Some(s) = self
            .lock()
            .iter()
            .find(|s| s.key == key || (s.key.0 == key.0 && s.at.elapsed() < fresh_for))
        {
            return s.body.clone();
        }
        let body = Rendered::new(render());
        let mut slots = self.lock();
        slots.retain(|s| s.key.0 != key.0);
        slots.push(Slot {
            key,
            at: Instant::now(),
            body: body.clone(),
        });
        body
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_once_per_key_and_again_when_it_changes() {
        let cache = RenderCache::default();
        let mut renders = 0;
        for _ in 0..3 {
            cache.get_or_render((1, 7, 0), || {
                renders += 1;
                "a".into()
            });
        }
        assert_eq!(renders, 1);
        let b = cache.get_or_render((1, 8, 0), || "b".into());
        assert_eq!(&b[..], b"b");
        // Another variant has its own slot.
        assert_eq!(&cache.get_or_render((2, 8, 0), || "c".into())[..], b"c");
        assert_eq!(&cache.get_or_render((1, 8, 0), || "x".into())[..], b"b");
    }

    #[test]
    fn a_recent_body_is_reused_for_a_newer_key_and_compressed_once() {
        let cache = RenderCache::default();
        let long = Duration::from_secs(3600);
        let first = cache.recent_or_render((1, 1, 0), long, || "metrics 1\n".repeat(100));
        let newer = cache.recent_or_render((1, 2, 0), long, || "metrics 2\n".into());
        assert_eq!(newer.body, first.body);
        let gz = first.gzip();
        assert!(gz.len() < first.body.len());
        assert_eq!(newer.gzip(), gz);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        assert_eq!(text.as_bytes(), &first.body[..]);
        // Without the grace, a newer key renders.
        let fresh = cache.recent_or_render((1, 3, 0), Duration::ZERO, || "metrics 3\n".into());
        assert_eq!(&fresh.body[..], b"metrics 3\n");
    }
}
