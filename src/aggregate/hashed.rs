use crate::rt::HashIndex;

/// A map from a precomputed hash to the entries with that hash, so a lookup with borrowed
/// parts (a name and a slice of attributes) allocates nothing.
pub(crate) struct HashedMap<E> {
    map: HashIndex<Vec<E>>,
    len: usize,
}

impl<E> Default for HashedMap<E> {
    fn default() -> Self {
        HashedMap {
            map: HashIndex::default(),
            len: 0,
        }
    }
}

impl<E> HashedMap<E> {
    /// The entry with this hash for which `eq` holds, created by `make` if there is none.
    #[inline]
    pub(crate) fn get_or_insert(
        &mut self,
        hash: u64,
        eq: impl Fn(&E) -> bool,
        make: impl FnOnce() -> E,
    ) -> &mut E {
        let bucket = self.map.get_or_default(hash);
        let pos = match bucket.iter().position(eq) {
            Some(p) => p,
            None => {
                bucket.push(make());
                self.len += 1;
                bucket.len() - 1
            }
        };
        &mut bucket[pos]
    }

    /// Like [`HashedMap::get_or_insert`], but `make` may refuse (then nothing is inserted).
    #[inline]
    pub(crate) fn get_or_try_insert(
        &mut self,
        hash: u64,
        eq: impl Fn(&E) -> bool,
        make: impl FnOnce() -> Option<E>,
    ) -> Option<&mut E> {
        let bucket = self.map.get_or_default(hash);
        let pos = match bucket.iter().position(eq) {
            Some(p) => p,
            None => {
                bucket.push(make()?);
                self.len += 1;
                bucket.len() - 1
            }
        };
        Some(&mut bucket[pos])
    }

    /// Visits every entry; entries for which `f` returns `false` are removed.
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&mut E) -> bool) {
        let mut removed = 0;
        self.map.retain(|_, bucket| {
            let before = bucket.len();
            bucket.retain_mut(&mut f);
            removed += before - bucket.len();
            !bucket.is_empty()
        });
        self.len -= removed;
    }

    /// Takes out the entries for which `take` returns `true`, each with its hash.
    pub(crate) fn take_where(&mut self, mut take: impl FnMut(&E) -> bool) -> Vec<(u64, E)> {
        let mut out = Vec::new();
        self.map.retain(|hash, bucket| {
            let mut i = 0;
            while i < bucket.len() {
                if take(&bucket[i]) {
                    out.push((hash, bucket.swap_remove(i)));
                } else {
                    i += 1;
                }
            }
            !bucket.is_empty()
        });
        self.len -= out.len();
        out
    }

    /// Puts back an entry taken out with [`HashedMap::take_where`]: merged by `merge` into
    /// the entry with its hash for which `eq` holds (one made since it was taken out), or
    /// added when there is none.
    pub(crate) fn put_back(
        &mut self,
        hash: u64,
        entry: E,
        eq: impl Fn(&E, &E) -> bool,
        merge: impl FnOnce(&mut E, E),
    ) {
        let bucket = self.map.get_or_default(hash);
        match bucket.iter_mut().find(|e| eq(e, &entry)) {
            Some(newer) => merge(newer, entry),
            None => {
                bucket.push(entry);
                self.len += 1;
            }
        }
    }
}
