//! Work done once, on a thread that ends with it: reading the command line, starting the
//! daemon, a reload.
//!
//! A thread keeps every stack page it has touched for as long as it lives. Start-up is the
//! deepest thing healthd does (clap builds its command tree, serde walks the config files,
//! the history store makes its first writes, and each of those futures and frames is tens of
//! KiB): about 120 KiB of stack, which the main thread would keep for the daemon's life.
//! glibc gives an ended thread's stack back to the system (it `madvise`s the pages away), so
//! run there, the main thread's own stack stays a few pages deep.

/// Run `work` on a thread of its own, wait for it and return what it returned; a panic in it
/// goes on in the caller. When no thread can be started, `work` runs on the caller's thread.
pub fn run<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let slot = &mut work;
    let done = std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name(format!("healthd-{name}"))
            .spawn_scoped(s, || slot.take().map(|w| w()));
        match spawned {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        }
    });
    match done {
        Some(value) => value,
        // Not started: the closure it was given was dropped unrun, and `work` is still here.
        None => (work
            .take()
            .expect("the thread did not start, so it took nothing"))(),
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn runs_on_another_thread_and_returns_its_value() {
        let caller = std::thread::current().id();
        let (value, thread, name) = run("test", || {
            let t = std::thread::current();
            (41 + 1, t.id(), t.name().map(str::to_string))
        });
        assert_eq!(value, 42);
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("healthd-test"));
    }

    #[test]
    fn borrows_from_the_caller() {
        let mut seen = Vec::new();
        run("test", || seen.push("ran"));
        assert_eq!(seen, ["ran"]);
    }

    #[test]
    fn a_panic_goes_on_in_the_caller() {
        let caught = std::panic::catch_unwind(|| run("test", || panic!("deep down")));
        let panic = caught.expect_err("the panic reaches the caller");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"deep down"));
    }
}
