//! Pressure stall information: `/proc/pressure/{cpu,memory,io}` for the host, and the
//! cgroup's `{cpu,memory,io}.pressure`, which have the same format (parsed by procfs).

use std::path::Path;
use std::time::Instant;

use procfs::{CpuPressure, FromRead, IoPressure, MemoryPressure, PressureRecord};

use crate::model::host::{PressureReading, Psi, PsiLine};

fn line(r: &PressureRecord) -> PsiLine {
    PsiLine {
        // The kernel writes percentages.
        avg10: f64::from(r.avg10) / 100.0,
        avg60: f64::from(r.avg60) / 100.0,
        avg300: f64::from(r.avg300) / 100.0,
        // Microseconds.
        total: r.total as f64 / 1e6,
    }
}

fn psi(some: &PressureRecord, full: &PressureRecord) -> Psi {
    Psi {
        some: line(some),
        full: Some(line(full)),
    }
}

/// The three pressure files under `dir` (named with `prefix`: `/proc/pressure/cpu` or
/// `<cgroup>/cpu.pressure`); `None` where PSI is off or absent.
pub fn read_in(dir: &Path, name: impl Fn(&str) -> String) -> Option<PressureReading> {
    let file = |r: &str| dir.join(name(r));
    let cpu = CpuPressure::from_file(file("cpu"))
        .ok()
        .map(|p| psi(&p.some, &p.full));
    let memory = MemoryPressure::from_file(file("memory"))
        .ok()
        .map(|p| psi(&p.some, &p.full));
    let io = IoPressure::from_file(file("io"))
        .ok()
        .map(|p| psi(&p.some, &p.full));
    (cpu.is_some() || memory.is_some() || io.is_some()).then(|| PressureReading {
        at: Instant::now(),
        cpu,
        memory,
        io,
    })
}

pub fn read_host() -> Option<PressureReading> {
    read_in(Path::new("/proc/pressure"), |r| r.to_string())
}
