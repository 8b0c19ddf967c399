//! Reloads that change, add and remove checks, under steady `/readyz` polling: a changed
//! check keeps its last verdict until its new definition has a result, an added one is
//! left out of its groups until it has one, so readiness never drops.

use std::fs;

use super::{Poller, main_config, tcp};
use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;
use crate::support::peers::live_port;
use crate::support::{START_TIMEOUT, eventually};

#[test]
fn reloads_that_change_add_and_remove_checks_never_drop_readiness() {
    let dir = ConfigDir::new(&main_config("200ms", "150ms"));
    let port = live_port();
    let probes = dir.probes_dir();
    let write = |name: &str, text: String| fs::write(probes.join(name), text).expect("write");
    write("db.toml", tcp("db", port, ""));
    write("cache.toml", tcp("cache", port, ""));
    let healthd = Subprocess::start(&dir, &[]);
    eventually("readiness", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 200
    });

    let poller = Poller::start(healthd.addr);
    const RELOADS: usize = 16;
    for i in 0..RELOADS {
        // Every reload changes `db`; every other one adds `extra`, the next removes it.
        write(
            "db.toml",
            tcp(
                "db",
                port,
                ["timeout = \"140ms\"", "timeout = \"160ms\""][i % 2],
            ),
        );
        if i % 2 == 0 {
            write("extra.toml", tcp("extra", port, ""));
        } else {
            fs::remove_file(probes.join("extra.toml")).expect("remove extra");
        }
        healthd.signal("HUP");
        // Longer than the first run of a changed check (within one interval), so each
        // definition gets to report.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    poller.assert_all_ready();

    let h = healthd.health();
    assert_eq!(
        h["reload"]["ok"], true,
        "the reloads were not all valid: {h}"
    );
    let reloads = healthd
        .log_lines()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Configuration reloaded"))
        })
        .count();
    assert!(
        reloads >= RELOADS - 1,
        "only {reloads} of {RELOADS} reloads applied; log:\n{}",
        healthd.logs()
    );
}
