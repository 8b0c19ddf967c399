//! How a line of `link/symbol-order.txt` becomes the names the linker is given: used by
//! build.rs, and by the test that checks the list against the release binary
//! (tests/it/release_binary.rs).
//!
//! Most names are exact and stay so until the function or its dependency changes. One kind
//! does not: when fat LTO merges the crates into one module, local functions of the same name
//! (one generic instantiated in several crates, such as `String`'s `write_str`) are told apart
//! by a suffix, `name.N`, and N is a counter over the whole program. Any change to healthd can
//! move it: one commit moved every such name by one, none of them matched, and the functions
//! were placed as if unlisted, each in a 64 KiB window of its own far from the ordered block:
//! 0.45–0.9 MiB more resident code in an idle daemon (bench/README.md, round twelve). So a
//! suffixed name stands for every copy whose suffix lies within [`SUFFIX_DRIFT`] of it: a few
//! more copies of those small functions join the block (all of them together are 18 KB),
//! and the ones that run are there whatever the counter did.

/// How far a suffix may have moved and still match.
pub const SUFFIX_DRIFT: u32 = 256;

/// The names one line of the list stands for: the line itself, and for `name.N` every
/// `name.M` with M within [`SUFFIX_DRIFT`] of N, nearest first.
pub fn names(line: &str) -> Vec<String> {
    let line = line.trim();
    let suffixed = line
        .rsplit_once('.')
        .and_then(|(base, n)| Some((base, n.parse::<u32>().ok()?)))
        .filter(|(base, _)| !base.is_empty());
    let Some((base, n)) = suffixed else {
        return vec![line.to_string()];
    };
    let mut out = vec![line.to_string()];
    for d in 1..=SUFFIX_DRIFT {
        if let Some(m) = n.checked_sub(d) {
            out.push(format!("{base}.{m}"));
        }
        out.push(format!("{base}.{}", n + d));
    }
    out
}
