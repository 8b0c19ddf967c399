//! Rendered bodies kept per snapshot: `/health` and `/metrics` are rendered at most once per
//! snapshot (and per variant), however many clients ask, so a flood of them costs a lookup
//! each instead of a render each — and cannot crowd the probe endpoints off the CPU.

use std::sync::Mutex;

use axum::body::Bytes;

/// One body per variant, valid while its key (the snapshot's sequence number and whatever
/// else the body depends on) is unchanged.
#[derive(Default)]
pub struct RenderCache {
    slots: Mutex<Vec<(Key, Bytes)>>,
}

/// What a cached body depends on: the variant (endpoint and format) and the generation of
/// every input.
pub type Key = (u8, u64, u64);

impl RenderCache {
    /// The body for `key`, rendering it with `render` when the cached one is for another key.
    /// Concurrent misses may render twice; nobody waits for another's render.
    pub fn get_or_render(&self, key: Key, render: impl FnOnce() -> String) -> Bytes {
        if let Some(b) = self
            .lock()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| b.clone())
        {
            return b;
        }
        let body = Bytes::from(render());
        let mut slots = self.lock();
        slots.retain(|(k, _)| k.0 != key.0);
        slots.push((key, body.clone()));
        body
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Key, Bytes)>> {
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
}
