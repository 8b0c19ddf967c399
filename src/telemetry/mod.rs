//! Renderers that export the snapshot: Prometheus text for `/metrics`.

pub mod prometheus;
