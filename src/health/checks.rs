//! [`Checks`]: the snapshot's list of check views, stored as shared chunks so that a new
//! snapshot copies only the chunks whose checks changed (and one pointer per other chunk).

use std::sync::Arc;

use super::snapshot::CheckView;

/// Probe checks per chunk: a changed check costs a copy of this many pointers.
pub const CHUNK: usize = 64;

/// One chunk of probe check views.
pub type Chunk = Arc<[Arc<CheckView>]>;

/// Probe checks in config order, then self-checks; iterated as one list.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) probes: usize,
    pub(crate) builtins: Arc<[Arc<CheckView>]>,
}

type ChunkIter<'a> = std::slice::Iter<'a, Arc<CheckView>>;

/// Iterator over every check view of a [`Checks`].
pub type Iter<'a> = std::iter::Chain<
    std::iter::FlatMap<std::slice::Iter<'a, Chunk>, ChunkIter<'a>, fn(&'a Chunk) -> ChunkIter<'a>>,
    ChunkIter<'a>,
>;

impl Checks {
    pub fn len(&self) -> usize {
        self.probes + self.builtins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> Iter<'_> {
        let chunk: fn(&Chunk) -> ChunkIter<'_> = |c| c.iter();
        self.chunks
            .iter()
            .flat_map(chunk)
            .chain(self.builtins.iter())
    }

    /// The `i`-th check in iteration order.
    pub fn get(&self, i: usize) -> Option<&Arc<CheckView>> {
        if i < self.probes {
            self.chunks.get(i / CHUNK)?.get(i % CHUNK)
        } else {
            self.builtins.get(i - self.probes)
        }
    }
}

impl<'a> IntoIterator for &'a Checks {
    type Item = &'a Arc<CheckView>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
