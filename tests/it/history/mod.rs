//! The history store: exact rollups and retention on a synthetic timeline, bounded size
//! after a simulated 400 days, a writer that drops and counts rather than blocks, and a
//! real file that survives restarts and `kill -9`.

mod api;
mod crash;
mod degrade;
mod reload;
mod report;
mod resume;
mod rules;
mod slo;
mod store;
mod writer;
