//! A `/metrics` body too large to keep, sent as it is rendered: one chunk of text (or of its
//! gzip form, compressed as it goes) at a time, so the memory a scrape holds is one chunk's.

use std::convert::Infallible;
use std::io::Write;

use axum::body::{Body, Bytes};
use flate2::write::GzEncoder;

use crate::telemetry::prometheus::Chunks;

/// The chunks as a body, compressed with gzip if `gzip`.
pub fn body(chunks: Chunks, gzip: bool) -> Body {
    let mut gz = gzip.then(|| GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut chunks = chunks.fuse();
    let pieces = std::iter::from_fn(move || {
        let Some(enc) = gz.as_mut() else {
            return chunks.next().map(Bytes::from);
        };
        // Writing to a Vec cannot fail; a sync flush makes each chunk's bytes whole.
        for text in chunks.by_ref() {
            let _ = enc.write_all(text.as_bytes()).and_then(|()| enc.flush());
            if !enc.get_ref().is_empty() {
                return Some(Bytes::from(std::mem::take(enc.get_mut())));
            }
        }
        let finished = gz.take()?.finish().unwrap_or_default();
        Some(Bytes::from(finished))
    });
    Body::from_stream(futures_util::stream::iter(pieces.map(Ok::<_, Infallible>)))
}
