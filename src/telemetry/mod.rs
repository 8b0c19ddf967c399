//! Renderers that export the snapshot: Prometheus text for `/metrics`, OTLP to collectors.

pub mod host;
pub mod otlp;
pub mod prometheus;
