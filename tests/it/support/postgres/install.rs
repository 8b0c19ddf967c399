//! Where the PostgreSQL binaries are, which OS user runs them, and the `initdb` template
//! every [`super::PgServer`] copies.
//!
//! Binaries: `$HEALTHD_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian),
//! else `pg_config --bindir`. `scripts/test` installs them.

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::PgServer;
use crate::support::{CMD_TIMEOUT, effective_uid, output_text, run_with_timeout};

/// Unprivileged account the server runs as when the tests run as root
/// (PostgreSQL refuses to run as root).
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn lookup_id(flag: &str, user: &str) -> Option<u32> {
    let out = run_with_timeout(Command::new("id").args([flag, user]), CMD_TIMEOUT).ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn pg_run_as() -> Option<RunAs> {
    static RUN_AS: OnceLock<Option<RunAs>> = OnceLock::new();
    *RUN_AS.get_or_init(|| {
        if effective_uid() != 0 {
            return None;
        }
        let found = ["postgres", "nobody"].iter().find_map(|user| {
            Some(RunAs {
                uid: lookup_id("-u", user)?,
                gid: lookup_id("-g", user)?,
            })
        });
        Some(found.expect("running as root but neither user `postgres` nor `nobody` exists"))
    })
}

/// Directory holding `initdb`, `postgres`, `pg_isready` and `psql`.
pub fn pg_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HEALTHD_TEST_PG_BIN") {
            return PathBuf::from(dir);
        }
        let version_key = |p: &Path| -> Vec<u32> {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.split('.').map(|n| n.parse().unwrap_or(0)).collect()
        };
        let newest = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("bin/postgres").is_file())
            .max_by_key(|p| version_key(p));
        if let Some(dir) = newest {
            return dir.join("bin");
        }
        if let Ok(out) = run_with_timeout(Command::new("pg_config").arg("--bindir"), CMD_TIMEOUT) {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("postgres").is_file() {
                return dir;
            }
        }
        panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/postgres, \
             no pg_config): run scripts/test, which installs them, or set HEALTHD_TEST_PG_BIN"
        );
    })
    .clone()
}

/// A command for a PostgreSQL binary, run as the server's OS user, in `cwd`.
pub(super) fn pg_command(program: &str, cwd: &Path) -> Command {
    let path = pg_bin_dir().join(program);
    let mut cmd = match pg_run_as() {
        Some(RunAs { uid, gid }) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--"])
                .arg(path);
            c
        }
        None => Command::new(path),
    };
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    cmd.current_dir(cwd).env("LC_ALL", "C");
    cmd
}

pub(super) fn chown_to_server_user(path: &Path) {
    if let Some(RunAs { uid, gid }) = pg_run_as() {
        chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {path:?} to {uid}:{gid}: {e}"));
    }
}

/// `cp -a from to` (keeps the server user's ownership when run as root).
pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let out = run_with_timeout(Command::new("cp").arg("-a").arg(from).arg(to), CMD_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// A pristine data directory made by `initdb`, cached under cargo's
/// `CARGO_TARGET_TMPDIR` across runs (initdb takes ~1.5 s, a copy ~0.1 s).
/// Each server copies it and then sets its own superuser password.
pub(super) fn pg_template() -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let bin = pg_bin_dir();
            let key: String = bin
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let cache_root = option_env!("CARGO_TARGET_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let cached = cache_root.join(format!(
                "healthd-pg-template-v1-uid{}{key}",
                effective_uid()
            ));
            if cached.join("PG_VERSION").is_file() {
                // A cache copied without its ownership (e.g. `cp -r target/`) is unusable
                // by the server user: rebuild it rather than fail every start.
                let owner_ok = match pg_run_as() {
                    Some(RunAs { uid, .. }) => {
                        use std::os::unix::fs::MetadataExt;
                        fs::metadata(cached.join("postgresql.conf")).is_ok_and(|m| m.uid() == uid)
                    }
                    None => true,
                };
                if owner_ok {
                    return cached;
                }
                let _ = fs::remove_dir_all(&cached);
            }
            // initdb where the server user can reach it (the cache may sit
            // below a directory it cannot enter), then publish with an atomic
            // rename so concurrent test binaries never see half a template.
            let work = tempfile::Builder::new()
                .prefix("healthd-pg-initdb-")
                .tempdir()
                .expect("create temp dir for initdb");
            chown_to_server_user(work.path());
            let data = work.path().join("data");
            let out = run_with_timeout(
                pg_command("initdb", work.path())
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", PgServer::SUPERUSER, "-E", "UTF8", "--locale=C"])
                    .args([
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "--no-sync",
                    ]),
                CMD_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("initdb: {e}"));
            if !out.status.success() {
                panic!("initdb failed: {}", output_text(&out));
            }
            let published = fs::create_dir_all(&cache_root)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let staging = tempfile::Builder::new()
                        .prefix(".healthd-pg-template-")
                        .tempdir_in(&cache_root)
                        .map_err(|e| e.to_string())?;
                    let staged = staging.path().join("data");
                    copy_tree(&data, &staged)?;
                    // Fails if another process published first: use theirs.
                    let _ = fs::rename(&staged, &cached);
                    Ok(())
                });
            if published.is_ok() && cached.join("PG_VERSION").is_file() {
                cached
            } else {
                eprintln!(
                    "harness: cannot cache the initdb template in {cache_root:?}: {published:?}"
                );
                work.keep().join("data")
            }
        })
        .clone()
}

/// Environment variables that would silently redirect `psql` / `pg_isready`.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
];
