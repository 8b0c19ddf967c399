//! The admin socket: how `healthd maintenance start|stop|status` reaches the running daemon.
//! A Unix socket (mode 0600, so only healthd's user and root can use it; nothing on the
//! network can start a maintenance window and silence notifications). One JSON line in,
//! one JSON line out:
//!
//! ```text
//! {"command":"start","seconds":1800,"checks":["db"]}   {"ok":true,"open":[…]}
//! {"command":"stop"}                                    {"ok":false,"error":"…","open":[]}
//! {"command":"status"}
//! ```

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::maintenance::Open;
use super::router::Command;

/// Where `healthd maintenance` looks without `--socket` or `[admin] socket`.
pub const DEFAULT_SOCKET: &str = "/run/healthd/admin.sock";
/// Bound on one exchange, both sides.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line.
const MAX_LINE: u64 = 4096;

/// A command to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Open (or replace) the command line's window for `seconds`, over `checks` (all if
    /// empty).
    Start {
        seconds: u64,
        #[serde(default)]
        checks: Vec<String>,
    },
    /// Close the command line's window.
    Stop,
    /// List the windows open now.
    Status,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The windows open after the command.
    #[serde(default)]
    pub open: Vec<Open>,
}

impl Response {
    pub fn error(e: String) -> Response {
        Response {
            ok: false,
            error: Some(e),
            open: Vec::new(),
        }
    }

    pub fn status(open: Vec<Open>) -> Response {
        Response {
            ok: true,
            error: None,
            open,
        }
    }
}

/// The socket, removed when dropped.
pub struct AdminSocket {
    path: PathBuf,
    stop: CancellationToken,
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen on `path` and hand each request to the router.
pub fn serve(path: &Path, commands: mpsc::Sender<Command>) -> Result<AdminSocket, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another process answers on {}", path.display()));
        }
        // Left behind by a healthd that did not stop cleanly.
        std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                conn = listener.accept() => match conn {
                    Ok((stream, _)) => {
                        let commands = commands.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, commands)).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Admin socket: accept failed.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    });
    Ok(AdminSocket {
        path: path.to_path_buf(),
        stop,
    })
}

async fn exchange(stream: UnixStream, commands: mpsc::Sender<Command>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Err(e) => Response::error(format!("bad request: {e}")),
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            let logged = format!("{req:?}");
            if commands.send(Command::Admin(req, tx)).await.is_err() {
                Response::error("healthd is stopping".into())
            } else {
                let r = rx
                    .await
                    .unwrap_or_else(|_| Response::error("healthd is stopping".into()));
                tracing::info!(request = %logged, ok = r.ok, error = r.error.as_deref().unwrap_or(""), "Admin command.");
                r
            }
        }
    };
    let mut out = serde_json::to_string(&response).unwrap_or_default();
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}

/// Send one request to the daemon listening on `path`.
pub async fn request(path: &Path, req: &Request) -> Result<Response, String> {
    let exchange = async {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            format!(
                "cannot reach healthd at {}: {e} (is it running, with [admin] socket set, and may you open the socket?)",
                path.display()
            )
        })?;
        let (read, mut write) = stream.into_split();
        let mut text = serde_json::to_string(req).map_err(|e| e.to_string())?;
        text.push('\n');
        write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("cannot send to healthd: {e}"))?;
        let mut line = String::new();
        BufReader::new(read.take(1024 * 1024))
            .read_line(&mut line)
            .await
            .map_err(|e| format!("no answer from healthd: {e}"))?;
        serde_json::from_str::<Response>(line.trim())
            .map_err(|e| format!("unreadable answer from healthd: {e}"))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| "healthd did not answer in time".to_string())?
}

/// The socket `healthd maintenance` uses: `--socket`, else `[admin] socket` of the main
/// config file (only that key is read: the rest may need the daemon's environment), else
/// [`DEFAULT_SOCKET`].
pub fn socket_path(socket: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
    let file = match config {
        Some(c) => c,
        None if default.exists() => default,
        None => return Ok(DEFAULT_SOCKET.into()),
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
    match table.get("admin").and_then(|a| a.get("socket")) {
        None => Ok(DEFAULT_SOCKET.into()),
        Some(toml::Value::String(s)) => Ok(s.into()),
        Some(_) => Err(format!("{}: admin.socket: expected a path", file.display())),
    }
}

/// Print an answer for people; the exit code (0 ok, 1 refused).
pub fn print(r: &Response) -> u8 {
    if let Some(e) = &r.error {
        eprintln!("healthd maintenance: {e}");
    }
    if r.open.is_empty() {
        println!("no maintenance window open");
    }
    for o in &r.open {
        let checks = if o.checks.is_empty() {
            "all checks".to_string()
        } else {
            o.checks.join(", ")
        };
        println!("open: {} until {} ({checks})", o.name, o.until);
    }
    u8::from(!r.ok)
}
