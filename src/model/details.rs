//! A run's raw values (`details` in `/health`): a few named values, most runs one or two.
//! Kept as one small sorted vector with static key names, not a map: every check holds the
//! details of its latest result, in flight and in the snapshot, so 100,000 checks hold
//! hundreds of thousands of these.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Named values, sorted by name; serialized as a JSON object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details(Vec<(Cow<'static, str>, Value)>);

impl Details {
    pub fn new() -> Details {
        Details(Vec::new())
    }

    /// Set `key` (replacing an earlier value).
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: Value) {
        let key = key.into();
        match self
            .0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref()))
        {
            Ok(i) => self.0[i].1 = value,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (key, value));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl std::ops::Index<&str> for Details {
    type Output = Value;

    /// The value of `key`; `Value::Null` when absent (as `serde_json::Value` indexes).
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_replaced_and_serialized_as_an_object() {
        let mut d = Details::new();
        d.insert("status", Value::from(200));
        d.insert("address", Value::from("127.0.0.1:80"));
        d.insert(String::from("status"), Value::from(503));
        assert_eq!(d.len(), 2);
        assert_eq!(d["status"], 503);
        assert_eq!(d["missing"], Value::Null);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"address":"127.0.0.1:80","status":503}"#
        );
        let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["address", "status"]);
    }
}
