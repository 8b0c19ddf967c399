//! The Debian package: `scripts/build-deb` runs `cargo deb` on the binary this test run built
//! (no release build: `--profile dev --no-build`), checks the layout and that the packaged
//! binary accepts the packaged config, and this test inspects the result with `dpkg-deb -c`.
//!
//! Needs `cargo-deb` (`scripts/test` installs it; `scripts/build-deb` installs it if missing)
//! and `dpkg-deb`.

use std::path::Path;
use std::process::Command;

#[test]
fn build_deb_packages_binary_unit_config_and_probes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = Path::new(env!("CARGO_BIN_EXE_healthd"));
    // cargo-deb finds the binary under target/<profile dir>/: package the one just built.
    let profile = match bin
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
    {
        Some("debug") => "dev",
        Some("release") => "release",
        other => panic!(
            "unexpected binary directory {other:?} for {}",
            bin.display()
        ),
    };
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(root.join("scripts/build-deb"))
        .args(["--profile", profile, "--no-build", "--fast", "-o"])
        .arg(out_dir.path())
        .current_dir(root)
        .output()
        .expect("run scripts/build-deb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/build-deb failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("build-deb: layout ok"), "{stdout}");
    let deb = stdout.lines().last().expect("a last line naming the .deb");
    assert!(
        deb.ends_with(".deb") && Path::new(deb).starts_with(out_dir.path()),
        "{deb}"
    );

    // Inspect it independently of the script.
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .expect("run dpkg-deb -c");
    assert!(listing.status.success(), "{listing:?}");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for want in [
        "./usr/bin/healthd",
        "./usr/lib/systemd/system/healthd.service",
        "./etc/healthd/healthd.toml",
        "./etc/healthd/probes.d/",
        "./usr/share/healthd/probes/tcp.toml",
        "./usr/share/healthd/probes/http.toml",
        "./usr/share/healthd/systemd/notify-reload.conf",
    ] {
        assert!(
            paths.contains(&want),
            "{want} not in the package:\n{listing}"
        );
    }
    // ExecReload= runs /bin/kill, which minimal Debian images lack.
    let depends = Command::new("dpkg-deb")
        .args(["-f", deb, "Depends"])
        .output()
        .expect("run dpkg-deb -f");
    let depends = String::from_utf8_lossy(&depends.stdout);
    assert!(
        depends.split(',').any(|d| d.trim() == "procps"),
        "Depends: {depends}"
    );
    // The unit in the package is the one in the repository.
    let unit = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{deb}' | tar -xOf - ./usr/lib/systemd/system/healthd.service"
        ))
        .output()
        .expect("extract the unit");
    assert!(unit.status.success(), "{unit:?}");
    let shipped = std::fs::read(root.join("systemd/healthd.service")).expect("read unit");
    assert_eq!(
        unit.stdout, shipped,
        "packaged unit differs from systemd/healthd.service"
    );
}
