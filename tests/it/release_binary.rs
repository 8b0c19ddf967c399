//! The shipped binary, as `scripts/build-release` links it: statically against glibc (a static
//! PIE), in the release profile. The rest of the suite runs the dynamically linked binary
//! `cargo test` builds; this runs the one that is packaged and benchmarked, on what static
//! linking could break: glibc's name resolution (its `files` and `dns` services are built in),
//! its start-up (the re-execution with `GLIBC_TUNABLES`), probes and endpoints; and checks
//! that the symbol order it was linked with still names its functions.
//!
//! `scripts/test` builds it before the suite and names it in `HEALTHD_RELEASE_BIN`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "../../link/order.rs"]
mod order;

use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, check_in, is};
use crate::support::eventually;
use crate::support::peers::{FAIL_500, HttpPeer, live_port};

fn release_binary() -> PathBuf {
    let path = std::env::var_os("HEALTHD_RELEASE_BIN").expect(
        "HEALTHD_RELEASE_BIN names the binary scripts/build-release linked; scripts/test sets it",
    );
    PathBuf::from(path)
}

/// Whether `readelf -lW` shows an ELF that asks for no program interpreter.
fn is_static(binary: &Path) -> (bool, String) {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(binary)
        .output()
        .expect("run readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success() && text.contains("DYN") && !text.contains("INTERP"),
        text,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_static_release_binary_resolves_names_probes_and_serves() {
    let binary = release_binary();
    let (static_pie, headers) = is_static(&binary);
    assert!(
        static_pie,
        "{} is not a static PIE (scripts/build-release links one on x86_64 Linux with glibc):\n{headers}",
        binary.display()
    );

    let peer = HttpPeer::start().await;
    let tcp_port = live_port();
    // `localhost`, not an address: glibc's own resolver, from /etc/hosts.
    let dir = ConfigDir::new(&format!(
        "[[checks]]\nname = \"tcp-by-name\"\nkind = \"tcp\"\nhost = \"localhost\"\n\
         port = {tcp_port}\ninterval = \"1s\"\ntimeout = \"800ms\"\n\n\
         [[checks]]\nname = \"http-by-name\"\nkind = \"http\"\n\
         url = \"http://localhost:{}/\"\ninterval = \"1s\"\ntimeout = \"800ms\"\n",
        peer.addr.port()
    ));
    tokio::task::spawn_blocking(move || {
        let d = Subprocess::start_binary(&binary, &dir);
        let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).expect("environ");
        assert!(
            String::from_utf8_lossy(&environ).contains("glibc.malloc.arena_max"),
            "the static binary re-executed itself with one malloc arena"
        );
        let healthy = |name: &str| {
            let h = d.health();
            check_in(&h, name).is_some_and(|c| is(c, "healthy"))
        };
        eventually(
            "both checks healthy by name",
            Duration::from_secs(20),
            || healthy("tcp-by-name") && healthy("http-by-name"),
        );
        assert_eq!(d.get("/readyz").0, 200, "{}", d.logs());
        assert!(peer.requests.load(Ordering::SeqCst) > 0);

        // The same binary sees a failure: the HTTP peer answers 500.
        peer.set(FAIL_500);
        eventually("http-by-name unhealthy", Duration::from_secs(20), || {
            let h = d.health();
            check_in(&h, "http-by-name").is_some_and(|c| is(c, "unhealthy"))
        });
        let (code, body) = d.get("/metrics");
        assert_eq!(code, 200);
        assert!(body.contains("http-by-name"), "{body}");
    })
    .await
    .expect("the test's body");
}

/// The symbol order (`link/symbol-order.txt`) names the release binary's functions as they
/// are now. Their names carry hashes that change with healthd's dependencies: after a
/// dependency was added, half the names matched nothing, the code was laid out as if there
/// were no list, and an idle daemon kept 9–10 MiB resident instead of 5.3 (bench/README.md,
/// round eleven). `scripts/symbol-order` writes the list again.
#[test]
fn the_symbol_order_names_the_release_binarys_functions() {
    let binary = release_binary();
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(&binary)
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success(), "nm {}", binary.display());
    let symbols = String::from_utf8_lossy(&out.stdout);
    let defined: std::collections::HashSet<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/link/symbol-order.txt"
    ))
    .expect("read link/symbol-order.txt");
    let names: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    // As build.rs hands them to the linker: a suffixed name matches a nearby suffix.
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !order::names(n).iter().any(|m| defined.contains(m.as_str())))
        .collect();
    // A few names may go with a small change to the code (each one that runs costs a 64 KiB
    // window of code); a stale list loses hundreds.
    assert!(
        missing.len() * 100 <= names.len(),
        "{} of the {} names in link/symbol-order.txt are not in {} (e.g. {:?}): run \
         scripts/symbol-order and commit the list",
        missing.len(),
        names.len(),
        binary.display(),
        &missing[..missing.len().min(5)]
    );
}

/// The constants an idle daemon reads lie together at the start of `.rodata`:
/// `link/rodata_link.py`, the linker `scripts/build-release` gives rustc, finds the ones
/// `link/rodata-order.txt` lists by content in the objects it links and writes how many it
/// found at the top of its linker script. Scattered, they kept 1.1 MB of `.rodata` resident in
/// an idle daemon instead of 0.3 (bench/README.md, round fourteen). `scripts/symbol-order`
/// writes the list again.
#[test]
fn the_rodata_order_finds_the_release_binarys_constants() {
    let binary = release_binary();
    let script = binary.with_file_name("healthd.rodata.ld");
    let text = std::fs::read_to_string(&script).unwrap_or_else(|e| {
        panic!(
            "read {} (link/rodata_link.py writes it when it links {}): {e}",
            script.display(),
            binary.display()
        )
    });
    let counts: Vec<usize> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [found, listed] = counts[..] else {
        panic!(
            "no count on the first line of {}:\n{text}",
            script.display()
        );
    };
    assert!(listed > 100, "{listed} constants in link/rodata-order.txt");
    assert!(
        found * 100 >= listed * 95,
        "{found} of the {listed} constants in link/rodata-order.txt are in {}: run \
         scripts/symbol-order and commit the lists",
        binary.display()
    );
}
