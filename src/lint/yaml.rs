//! A YAML document as a plain tree whose every node knows its line, read with `serde-saphyr`
//! (maintained; `serde_yaml` is archived and its forks `serde_yaml_ng`/`serde_norway` have not
//! released since 2024). Kubernetes manifests mix kinds whose fields could clash with any typed
//! model, so the linter walks this tree and reads only the fields it needs; [`At`] carries the
//! key path (`spec.containers[1].livenessProbe`) and the line for every finding.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    /// Strings, numbers and booleans, as written (`9750`, `true`, `health`).
    Scalar(String),
    Seq(Vec<Spanned<Node>>),
    /// Keys in document order; non-string keys are kept as their text.
    Map(Vec<(String, Spanned<Node>)>),
}

/// Every document of a multi-document YAML text.
pub fn documents(text: &str) -> Result<Vec<Spanned<Node>>, String> {
    serde_saphyr::from_multiple::<Spanned<Node>>(text).map_err(|e| first_line(&e.to_string()))
}

/// The parser's message without the source excerpt it draws below it.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key {
                Node::Scalar(s) => s,
                Node::Null => "null".into(),
                other => format!("{other:?}"),
            };
            entries.push((key, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Map(entries))
    }
}

/// A node with its key path from the document root (`spec.containers[1].livenessProbe`).
#[derive(Clone)]
pub struct At<'a> {
    pub node: &'a Spanned<Node>,
    pub path: String,
}

impl<'a> At<'a> {
    pub fn root(node: &'a Spanned<Node>) -> At<'a> {
        At {
            node,
            path: String::new(),
        }
    }

    /// The line (1-based) where this node starts.
    pub fn line(&self) -> u64 {
        self.node.referenced.line()
    }

    /// The child under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<At<'a>> {
        let Node::Map(entries) = &self.node.value else {
            return None;
        };
        let (_, child) = entries.iter().find(|(k, _)| k == key)?;
        Some(At {
            node: child,
            path: join(&self.path, key),
        })
    }

    /// The items of a sequence (none for anything else).
    pub fn items(&self) -> Vec<At<'a>> {
        let Node::Seq(items) = &self.node.value else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .map(|(i, node)| At {
                node,
                path: format!("{}[{i}]", self.path),
            })
            .collect()
    }

    /// The entries of a mapping.
    pub fn entries(&self) -> Vec<(&'a str, At<'a>)> {
        let Node::Map(entries) = &self.node.value else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|(k, node)| {
                (
                    k.as_str(),
                    At {
                        node,
                        path: join(&self.path, k),
                    },
                )
            })
            .collect()
    }

    /// The text of a scalar.
    pub fn str(&self) -> Option<&'a str> {
        match &self.node.value {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// `get(key)` as text.
    pub fn str_at(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|n| n.str())
    }

    /// `get(key)` as a whole number.
    pub fn int_at(&self, key: &str) -> Option<i64> {
        self.str_at(key).and_then(|s| s.parse().ok())
    }

    /// `get(key)` as a list of strings (non-strings skipped).
    pub fn strings_at(&self, key: &str) -> Vec<&'a str> {
        self.get(key)
            .map(|n| n.items().iter().filter_map(|i| i.str()).collect())
            .unwrap_or_default()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_lines_and_paths() {
        let text = "kind: Pod\n---\napiVersion: v1\nspec:\n  containers:\n    - name: a\n      ports: [{containerPort: 9750}]\n      probe: { port: health, enabled: true }\n";
        let docs = documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        let root = At::root(&docs[1]);
        let containers = root.get("spec").unwrap().get("containers").unwrap();
        let first = &containers.items()[0];
        assert_eq!(first.path, "spec.containers[0]");
        assert_eq!(first.line(), 6);
        assert_eq!(first.str_at("name"), Some("a"));
        let port = &first.get("ports").unwrap().items()[0];
        assert_eq!(port.int_at("containerPort"), Some(9750));
        let probe = first.get("probe").unwrap();
        assert_eq!(probe.line(), 8);
        assert_eq!(
            probe.get("port").unwrap().path,
            "spec.containers[0].probe.port"
        );
        assert_eq!(probe.str_at("enabled"), Some("true"));
        assert!(root.get("nope").is_none());
    }

    #[test]
    fn bad_yaml_is_an_error_on_one_line() {
        let err = documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}
