//! Release builds link the functions healthd runs in its steady state first, in one block
//! (`link/symbol-order.txt`, written by `scripts/symbol-order`). The kernel maps a binary's
//! code in 64 KiB windows around each page fault, so functions scattered over 15 MB of code
//! keep most of it resident; packed together they keep a fraction. Only the order changes:
//! a symbol missing from the list (renamed since) is placed as before, without a warning.
//!
//! Needs LLD, Rust's default linker for x86_64-unknown-linux-gnu since 1.90.

use std::env;
use std::path::Path;

#[path = "link/order.rs"]
mod order;

fn main() {
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("link")
        .join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-changed=link/order.rs");
    // Read by link/rodata_link.py, the linker scripts/build-release gives rustc: a new list
    // must link the binary again.
    println!("cargo:rerun-if-changed=link/rodata-order.txt");
    println!("cargo:rerun-if-changed=link/rodata_link.py");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let lld_default = env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    if release && lld_default && list.exists() {
        let text = std::fs::read_to_string(&list).expect("read link/symbol-order.txt");
        let mut expanded = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            for name in order::names(line) {
                expanded.push_str(&name);
                expanded.push('\n');
            }
        }
        let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("symbol-order.txt");
        std::fs::write(&out, expanded).expect("write the expanded symbol order");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            out.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if release && lld_default {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
