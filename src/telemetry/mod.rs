//! Renderers that export the snapshot: Prometheus text for `/metrics`, OTLP to collectors.

pub mod history;
pub mod host;
pub mod otlp;
pub mod prometheus;
