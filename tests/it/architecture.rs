//! The module structure the README's "Architecture" section describes, checked against the
//! code: every `crate::…` path in `src/` may only point down the flow
//! (model ← redact, resilience ← check ← config ← health ← scheduler ← renderers ← daemon),
//! so there is no import cycle between modules and the shared vocabulary stays a leaf.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module with its layer; a module may use only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("allocator", 1),
    ("redact", 1),
    ("resilience", 1),
    ("descriptors", 1),
    ("passing", 1),
    ("logging", 1),
    ("host", 1),
    ("check", 2),
    ("config", 3),
    ("health", 4),
    ("scheduler", 5),
    ("history", 5),
    ("telemetry", 6),
    ("notify", 6),
    ("systemd", 7),
    ("server", 7),
    ("daemon", 8),
    ("lint", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(file's module, used module)` for every `crate::x` in the code (comments included: a doc
/// link up the flow is a smell too).
fn arrows() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let from = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(from.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for (i, _) in text.match_indices("crate::") {
            let to: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                out.insert((from.clone(), to));
            }
        }
    }
    out
}

#[test]
fn every_module_is_in_a_layer() {
    for (from, to) in arrows() {
        assert!(
            layer(&from).is_some(),
            "src/{from} is in no layer of LAYERS"
        );
        assert!(
            layer(&to).is_some(),
            "crate::{to} (used by {from}) is in no layer"
        );
    }
}

#[test]
fn imports_only_point_down_the_flow() {
    let up: Vec<String> = arrows()
        .into_iter()
        .filter(|(from, to)| layer(to) >= layer(from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(up.is_empty(), "imports against the flow: {up:?}");
}

#[test]
fn the_vocabulary_is_a_leaf() {
    let model: Vec<String> = arrows()
        .into_iter()
        .filter(|(from, _)| from == "model")
        .map(|(_, to)| to)
        .collect();
    assert!(model.is_empty(), "model uses crate::{model:?}");
}
