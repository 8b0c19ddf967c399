//! The PostgreSQL half of a kept connection: how to open one (TLS per `sslmode`, the
//! password the driver resolved) and what to ask on it (the user's query, then role,
//! version and replication lag in one status query). The driver in `check::session` does
//! the rest.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PgRole, SslMode};
use crate::check::session::Connector;
use crate::model::{Level, Outcome, Reason, classify, error_chain, one_line, round_ms};

/// How long a dropped connection may take to say goodbye to the server before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One open connection: the client and the task driving its socket.
pub struct Connection {
    client: Option<tokio_postgres::Client>,
    driver: Option<JoinHandle<()>>,
}

impl Drop for Connection {
    /// Dropping the client makes the driver send Terminate and close the socket; it gets
    /// [`CLOSE_GRACE`] for that and is then aborted, so no server connection outlives us.
    fn drop(&mut self) {
        drop(self.client.take());
        let Some(mut driver) = self.driver.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(CLOSE_GRACE, &mut driver)
                        .await
                        .is_err()
                    {
                        driver.abort();
                    }
                });
            }
            Err(_) => driver.abort(),
        }
    }
}

impl Connection {
    /// Close a connection whose last run was cut off: first ask the server to cancel the
    /// query that may still be running there (else its backend lives on until the query
    /// ends), then close as usual. Runs in the background, bounded by [`CLOSE_GRACE`].
    fn abandon(self, tls: MakeRustlsConnect) {
        let token = self.client.as_ref().map(|c| c.cancel_token());
        match (token, tokio::runtime::Handle::try_current()) {
            (Some(token), Ok(rt)) => {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_GRACE, token.cancel_query(tls)).await;
                    drop(self);
                });
            }
            _ => drop(self),
        }
    }
}

/// What a PostgreSQL check keeps between runs, apart from the connection.
pub struct Postgres {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
    pub(super) sslmode: SslMode,
    pub(super) shown: String,
    pub(super) query: String,
    pub(super) expect_value: Option<String>,
    pub(super) expect_role: Option<PgRole>,
    pub(super) max_replication_lag: Option<Duration>,
}

impl Connector for Postgres {
    type Conn = Connection;

    fn target(&self) -> &str {
        &self.shown
    }

    async fn open(&mut self, password: Option<&str>) -> Result<Connection, Outcome> {
        let mut config = self.config.clone();
        if let Some(pw) = password {
            config.password(pw.as_bytes());
        }
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error_outcome("connect", &e))?;
        let shown = self.shown.clone();
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target = %shown, error = %one_line(&error_chain(&e)), "PostgreSQL connection ended.");
            }
        });
        tracing::debug!(target = %self.shown, sslmode = self.sslmode.as_str(), "Connected to PostgreSQL.");
        Ok(Connection {
            client: Some(client),
            driver: Some(driver),
        })
    }

    async fn probe(&mut self, conn: &mut Connection) -> (Outcome, bool) {
        let out = self.query(conn).await;
        let broken = out.level == Level::Failed && Self::is_closed(conn);
        (out, broken)
    }

    fn is_closed(conn: &Connection) -> bool {
        conn.client.as_ref().is_none_or(|c| c.is_closed())
    }

    fn abandon(&self, conn: Connection) {
        conn.abandon(self.tls.clone());
    }
}

impl Postgres {
    async fn query(&self, conn: &Connection) -> Outcome {
        let Some(client) = conn.client.as_ref() else {
            return Outcome::failed(Reason::Internal, "no connection");
        };
        let started = Instant::now();
        let messages = match client.simple_query(&self.query).await {
            Ok(m) => m,
            Err(e) => {
                // A query that opened a transaction and failed inside it would leave the
                // kept connection unusable ("current transaction is aborted").
                if e.as_db_error().is_some() {
                    let _ = client.simple_query("ROLLBACK").await;
                }
                return self.error_outcome("query", &e);
            }
        };
        let query_elapsed = started.elapsed();
        let first = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        });
        let status = match client
            .simple_query(
                "SELECT pg_is_in_recovery()::text, current_setting('server_version'), \
                 CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN '0' \
                 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text END",
            )
            .await
        {
            Ok(m) => m,
            Err(e) => return self.error_outcome("status query", &e),
        };
        let elapsed = started.elapsed();
        let row = status.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).map(str::to_string),
                r.get(1).map(str::to_string),
                r.get(2).map(str::to_string),
            )),
            _ => None,
        });
        let Some((Some(recovery), version, lag)) = row else {
            return Outcome::failed(
                Reason::Protocol,
                format!("{}: unexpected answer to the status query", self.shown),
            );
        };
        let role = if recovery == "true" {
            PgRole::Replica
        } else {
            PgRole::Primary
        };
        let lag: Option<f64> = lag.and_then(|l| l.parse().ok());
        let details = |o: Outcome| {
            let mut o = o
                .with_detail("role", role.as_str())
                .with_detail("query_ms", round_ms(query_elapsed))
                .with_detail("latency_ms", round_ms(elapsed))
                .with_detail("sslmode", self.sslmode.as_str())
                .answered_in(elapsed);
            if let Some(v) = &version {
                o = o.with_detail("server_version", v.as_str());
            }
            if let Some(l) = lag {
                o = o.with_detail("replication_lag_s", l);
            }
            o
        };

        if let Some(expected) = &self.expect_value {
            match &first {
                Some(Some(v)) if v == expected => {}
                Some(Some(v)) => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned \"{}\", expected \"{}\"",
                            self.shown,
                            one_line(v),
                            one_line(expected)
                        ),
                    ));
                }
                Some(None) => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned NULL, expected \"{}\"",
                            self.shown,
                            one_line(expected)
                        ),
                    ));
                }
                None => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned no rows, expected \"{}\"",
                            self.shown,
                            one_line(expected)
                        ),
                    ));
                }
            }
        }
        if let Some(expected) = self.expect_role
            && expected != role
        {
            return details(Outcome::failed(
                Reason::Role,
                format!(
                    "{} is a {}, expected a {}",
                    self.shown,
                    role.as_str(),
                    expected.as_str()
                ),
            ));
        }
        if let (Some(max), Some(l)) = (self.max_replication_lag, lag)
            && l > max.as_secs_f64()
        {
            return details(Outcome::degraded(
                Reason::Threshold,
                format!(
                    "{}: replication lag {l:.1}s is above {}",
                    self.shown,
                    humantime::format_duration(max)
                ),
            ));
        }
        let version = version.as_deref().unwrap_or("?");
        details(Outcome::ok(format!(
            "{} answered ({}, PostgreSQL {version})",
            self.shown,
            role.as_str()
        )))
    }

    /// A failed outcome for an error while `doing` something, with the server's own words.
    fn error_outcome(&self, doing: &str, e: &tokio_postgres::Error) -> Outcome {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let reason = match code {
                "28P01" | "28000" => Reason::Auth,
                // Too many connections, starting up, shutting down: the server is not usable.
                "53300" | "57P03" | "57P01" | "57P02" => Reason::Connect,
                _ => Reason::Protocol,
            };
            let what = if reason == Reason::Auth {
                "authentication failed"
            } else {
                doing
            };
            return Outcome::failed(
                reason,
                format!(
                    "{}: {what}: {} (SQLSTATE {code})",
                    self.shown,
                    one_line(db.message())
                ),
            )
            .with_detail("sqlstate", code);
        }
        let text = error_chain(e);
        let lower = text.to_lowercase();
        let reason = classify(e).unwrap_or(
            if lower.contains("password") || lower.starts_with("authentication") {
                Reason::Auth
            } else {
                Reason::Protocol
            },
        );
        Outcome::failed(
            reason,
            format!("{}: {doing}: {}", self.shown, one_line(&text)),
        )
    }
}
