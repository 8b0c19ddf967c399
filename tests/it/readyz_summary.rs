//! `/readyz` answers from the group summary when it can (plain, whole group, nothing
//! excluded) and from the members otherwise; both paths must give the same verdict.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::support::daemon::{TestDaemon, http_get};
use crate::support::eventually_async;
use crate::support::peers::RefusingPort;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_and_detailed_readiness_agree() {
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = up.local_addr().expect("addr").port();
    // A bound port with nothing listening: connections are refused.
    let down = RefusingPort::new();
    let down_port = down.port;
    let d = TestDaemon::start(&format!(
        "[server]\nshutdown_delay = \"1s\"\n\n\
         [[checks]]\nname = \"up\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {up_port}\n\
         interval = \"200ms\"\ntimeout = \"100ms\"\n\n\
         [[checks]]\nname = \"down\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {down_port}\n\
         interval = \"200ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\n"
    ))
    .await;
    let addr = d.addr;

    let plain = eventually_async(
        "/readyz to turn unhealthy",
        Duration::from_secs(20),
        || async {
            let r = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
                .await
                .expect("request");
            (r.0 == 503 && r.1 == "unhealthy\n").then_some(r)
        },
    )
    .await;
    assert_eq!(plain.0, 503);

    let (verbose, excluded, json) = tokio::task::spawn_blocking(move || {
        (
            get(addr, "/readyz?verbose"),
            get(addr, "/readyz?exclude=down"),
            get(addr, "/readyz?format=json"),
        )
    })
    .await
    .expect("requests");
    assert_eq!(verbose.0, 503, "{verbose:?}");
    assert!(verbose.1.contains("[+]up ok"), "{verbose:?}");
    assert!(verbose.1.contains("[-]down failed: connect"), "{verbose:?}");
    assert_eq!(excluded, (200, "ok\n".to_string()));
    assert_eq!(json.0, 503, "{json:?}");
    assert!(json.1.contains("\"status\":\"unhealthy\""), "{json:?}");

    // Fixing the dependency turns the plain answer back to 200.
    let _down = down.listen();
    eventually_async("/readyz to recover", Duration::from_secs(20), || async {
        let r = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
            .await
            .expect("request");
        (r == (200, "ok\n".to_string())).then_some(())
    })
    .await;
    drop(up);
}
