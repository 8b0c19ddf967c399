//! `depends_on`: a child that fails while its parent fails is shown as blocked (its status
//! stays honest) and is not notified; once the parent recovers, the child is judged on its
//! own again.

use std::time::Duration;

use serde_json::json;

use super::{PROMPT, Setup, quiet};
use crate::support::peers::Switch;
use crate::support::webhook::WebhookPeer;

fn tcp(name: &str, port: u16, keys: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         interval = \"500ms\"\ntimeout = \"200ms\"\nfailure_threshold = 1\n{keys}\n"
    )
}

#[tokio::test]
async fn a_blocked_child_is_shown_and_not_notified() {
    let peer = WebhookPeer::start().await;
    let mut gw = Switch::new_up().await;
    let mut db = Switch::new_up().await;
    let (gw_port, db_port, url) = (gw.port, db.port, peer.url("/"));
    let config = |db_keys: &str| {
        format!(
            "{}{}[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            tcp("gw", gw_port, ""),
            tcp("db", db_port, db_keys),
            url
        )
    };
    let mut s = Setup::start(&config("depends_on = [\"gw\"]"), &[]).await;
    for c in ["gw", "db"] {
        s.d.wait_check(c, "healthy", PROMPT, |v| v["status"] == "healthy")
            .await;
    }

    // The gateway goes down and the database behind it with it.
    gw.down().await;
    db.down().await;
    let child =
        s.d.wait_check("db", "blocked", PROMPT, |c| {
            c["blocked_by"] == json!(["gw"])
        })
        .await;
    assert_eq!(
        child["status"], "unhealthy",
        "the verdict stays honest: {child}"
    );
    assert_eq!(s.d.get("/readyz").await.0, 503);
    quiet(Duration::from_millis(2500)).await;
    assert_eq!(peer.accepted(), ["firing gw healthy->unhealthy"]);

    // Both come back: the child was never news.
    db.up().await;
    gw.up().await;
    let got = peer.wait_accepted(2, PROMPT).await;
    assert_eq!(got[1], "resolved gw unhealthy->healthy");
    s.d.wait_check("db", "healthy", PROMPT, |c| c["status"] == "healthy")
        .await;
    quiet(Duration::from_millis(1500)).await;
    assert_eq!(peer.accepted().len(), 2, "{:?}", peer.accepted());

    // Down together again, but only the gateway comes back: the database fails on its
    // own, and that is news.
    gw.down().await;
    db.down().await;
    s.d.wait_check("db", "blocked", PROMPT, |c| {
        c["blocked_by"] == json!(["gw"])
    })
    .await;
    gw.up().await;
    let got = peer.wait_accepted(5, Duration::from_secs(10)).await;
    assert_eq!(
        got[2..],
        [
            "firing gw healthy->unhealthy",
            "resolved gw unhealthy->healthy",
            "firing db healthy->unhealthy"
        ]
    );
    let child = s.d.check("db").await;
    assert!(child.get("blocked_by").is_none(), "{child}");

    // Blocked again, then a reload drops the dependency: no longer blocked.
    gw.down().await;
    s.d.wait_check("db", "blocked", PROMPT, |c| {
        c["blocked_by"] == json!(["gw"])
    })
    .await;
    s.reload(&config("")).await;
    s.d.wait_check("db", "unblocked", PROMPT, |c| c.get("blocked_by").is_none())
        .await;
}
