//! Debian's chromium, headless, driven over the DevTools protocol (chromiumoxide): for the
//! status page tests. No browser is downloaded; `scripts/test` installs the package. The
//! browser runs without its sandbox (tests run as root), with a fresh profile, and with
//! every background network feature off, so nothing leaves 127.0.0.1.

use std::sync::{Arc, Mutex};

use chromiumoxide::browser::{Browser as Chromium, BrowserConfig};
use chromiumoxide::cdp::js_protocol::runtime::{EventConsoleApiCalled, EventExceptionThrown};
use chromiumoxide::page::Page;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// A running headless chromium; closed (and its processes killed) on [`Browser::close`].
pub struct Browser {
    inner: Chromium,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

/// Console errors and uncaught exceptions a page produced.
#[derive(Clone, Default)]
pub struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Browser {
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable("/usr/bin/chromium")
            .no_sandbox()
            .new_headless_mode()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .args([
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
            ])
            .build()
            .expect("browser config");
        let (inner, mut events) = Chromium::launch(config).await.expect("launch chromium");
        let handler = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if ev.is_err() {
                    break;
                }
            }
        });
        Browser {
            inner,
            handler,
            _profile: profile,
        }
    }

    /// Open `url` in a new tab, collecting its console errors and exceptions.
    pub async fn open(&self, url: &str) -> (Page, Errors) {
        let page = self.inner.new_page("about:blank").await.expect("new page");
        let errors = Errors::default();
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .expect("console events");
        let mut thrown = page
            .event_listener::<EventExceptionThrown>()
            .await
            .expect("exception events");
        let (e1, e2) = (errors.clone(), errors.clone());
        tokio::spawn(async move {
            while let Some(ev) = console.next().await {
                let kind = format!("{:?}", ev.r#type).to_lowercase();
                if kind.contains("error") || kind.contains("warn") {
                    let text: Vec<String> = ev
                        .args
                        .iter()
                        .filter_map(|a| a.value.as_ref().map(|v| v.to_string()))
                        .collect();
                    e1.0.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(text.join(" "));
                }
            }
        });
        tokio::spawn(async move {
            while let Some(ev) = thrown.next().await {
                e2.0.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{:?}", ev.exception_details.text));
            }
        });
        page.goto(url).await.expect("navigate");
        page.wait_for_navigation().await.expect("load");
        (page, errors)
    }

    /// Close the browser and make sure none of its processes is left.
    pub async fn close(mut self) {
        let pid = self
            .inner
            .get_mut_child()
            .and_then(|c| c.as_mut_inner().id());
        let family: Vec<u32> = pid.map(descendants).unwrap_or_default();
        let _ = self.inner.close().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.inner.wait()).await;
        let _ = self.inner.kill().await;
        super::send_signal(&family, "KILL");
        self.handler.abort();
    }
}

/// Every process below `pid` (chromium's zygotes, renderers, GPU and network services).
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![];
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for c in super::children_of(p) {
            all.push(c);
            next.push(c);
        }
    }
    all
}

/// Evaluate `js` in `page` and read the result as `T`.
pub async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluate {js}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("evaluate {js}: not the expected type: {e}"))
}
