//! Load average and uptime, through `sysinfo`.

use std::time::Instant;

use sysinfo::System;

use crate::model::host::SystemReading;

pub fn read() -> Option<SystemReading> {
    let load = System::load_average()
        .ok()
        .map(|l| [l.one, l.five, l.fifteen]);
    let uptime = System::uptime().ok().map(|s| s as f64);
    (load.is_some() || uptime.is_some()).then(|| SystemReading {
        at: Instant::now(),
        load_average: load,
        uptime_seconds: uptime,
    })
}
