//! Interned strings: each distinct string of the series index (metric names, providers,
//! accounts, regions, resource ids, label names and values) is stored once, and series
//! refer to it by a 4-byte [`Sym`].
//!
//! The strings live end to end in one byte arena, not one allocation each: a million
//! resource ids cost their bytes plus 16 bytes of entry, and churned-out strings do not
//! leave a million small holes in the allocator (the cause of RSS growing under churn while
//! the bytes in use stayed flat). Entries are reference-counted; a string whose last user
//! leaves is dropped from the lookup table and its symbol reused, and the arena is compacted
//! once dead bytes outnumber live ones, so its size follows the live set.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A string's number in [`Symbols`]; valid while someone holds a reference to it.
pub type Sym = u32;

#[derive(Clone, Copy)]
struct SymEntry {
    off: u64,
    len: u32,
    /// 0: free (the symbol is in the free list).
    refs: u32,
}

/// Below this many dead bytes the arena is never compacted (not worth the copy).
const COMPACT_FROM: usize = 1 << 16;

pub struct Symbols {
    arena: Vec<u8>,
    entries: Vec<SymEntry>,
    free: Vec<Sym>,
    /// Live symbols, hashed by their text.
    table: HashTable<Sym>,
    /// Seeded per process, so crafted label values cannot collide on purpose.
    hasher: foldhash::quality::RandomState,
    dead: usize,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            arena: Vec::new(),
            entries: Vec::new(),
            free: Vec::new(),
            table: HashTable::new(),
            hasher: foldhash::quality::RandomState::default(),
            dead: 0,
        }
    }
}

fn text<'a>(arena: &'a [u8], entries: &[SymEntry], sym: Sym) -> &'a str {
    let e = entries[sym as usize];
    let bytes = &arena[e.off as usize..e.off as usize + e.len as usize];
    // SAFETY: the arena only receives whole `&str`s (in `intern` and `compact`), and every
    // live entry delimits exactly one of them, so the bytes are valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// What the lookup table hashes a symbol by when it grows or shrinks: its text.
fn rehash<'a>(
    hasher: &'a foldhash::quality::RandomState,
    arena: &'a [u8],
    entries: &'a [SymEntry],
) -> impl Fn(&Sym) -> u64 + 'a {
    move |&sym| hasher.hash_one(text(arena, entries, sym))
}

impl Symbols {
    /// The text of a live symbol.
    pub fn get(&self, sym: Sym) -> &str {
        text(&self.arena, &self.entries, sym)
    }

    /// The symbol of `s`, if some series uses it (no reference taken).
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        let h = self.hasher.hash_one(s);
        self.table
            .find(h, |&sym| text(&self.arena, &self.entries, sym) == s)
            .copied()
    }

    /// The symbol of `s`, created if needed, with one more reference.
    pub fn intern(&mut self, s: &str) -> Sym {
        let h = self.hasher.hash_one(s);
        if let Some(&sym) = self
            .table
            .find(h, |&sym| text(&self.arena, &self.entries, sym) == s)
        {
            self.entries[sym as usize].refs += 1;
            return sym;
        }
        let e = SymEntry {
            off: self.arena.len() as u64,
            len: s.len() as u32,
            refs: 1,
        };
        self.arena.extend_from_slice(s.as_bytes());
        let sym = match self.free.pop() {
            Some(sym) => {
                self.entries[sym as usize] = e;
                sym
            }
            None => {
                self.entries.push(e);
                (self.entries.len() - 1) as Sym
            }
        };
        let Symbols {
            arena,
            entries,
            table,
            hasher,
            ..
        } = self;
        table.insert_unique(h, sym, rehash(hasher, arena, entries));
        sym
    }

    /// One more reference to a live symbol.
    pub fn retain(&mut self, sym: Sym) {
        self.entries[sym as usize].refs += 1;
    }

    /// Drops one reference; the last one frees the symbol.
    pub fn release(&mut self, sym: Sym) {
        let e = &mut self.entries[sym as usize];
        debug_assert!(e.refs > 0, "symbol {sym} released more often than taken");
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return;
        }
        let len = e.len as usize;
        let h = self.hasher.hash_one(self.get(sym));
        if let Ok(found) = self.table.find_entry(h, |&x| x == sym) {
            found.remove();
        }
        self.free.push(sym);
        self.dead += len;
        if self.dead >= COMPACT_FROM && self.dead * 3 > self.arena.len() {
            self.compact();
        }
    }

    /// Copies the live strings into a new arena of their size.
    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead);
        for e in self.entries.iter_mut().filter(|e| e.refs > 0) {
            let start = arena.len() as u64;
            arena.extend_from_slice(&self.arena[e.off as usize..e.off as usize + e.len as usize]);
            e.off = start;
        }
        self.arena = arena;
        self.dead = 0;
        // Free entries at the end can go; those in the middle wait in the free list.
        while self.entries.last().is_some_and(|e| e.refs == 0) {
            self.entries.pop();
        }
        let live = self.entries.len() as Sym;
        self.free.retain(|s| *s < live);
        if self.entries.capacity() > 2 * self.entries.len() + 1024 {
            self.entries.shrink_to_fit();
        }
    }

    /// Gives back the lookup table's room once under half of it is used (after a
    /// retention run released many strings).
    pub fn shrink(&mut self) {
        if self.table.capacity() > 1024 && self.table.len() < self.table.capacity() / 2 {
            let Symbols {
                arena,
                entries,
                table,
                hasher,
                ..
            } = self;
            table.shrink_to_fit(rehash(hasher, arena, entries));
        }
    }

    /// How many distinct strings are live.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_counts_frees_and_compacts() {
        let mut s = Symbols::default();
        let a = s.intern("aws");
        assert_eq!(s.intern("aws"), a);
        let b = s.intern("eu-west-1");
        assert_ne!(a, b);
        assert_eq!((s.get(a), s.get(b)), ("aws", "eu-west-1"));
        assert_eq!(s.lookup("eu-west-1"), Some(b));
        s.release(a);
        assert_eq!(s.lookup("aws"), Some(a), "one reference left");
        s.release(a);
        assert_eq!(s.lookup("aws"), None);
        assert_eq!(s.len(), 1);

        // Enough churn to compact several times: the live strings stay readable, the
        // arena follows the live set.
        let mut live = Vec::new();
        for gen in 0..20 {
            let next: Vec<(Sym, String)> = (0..2000)
                .map(|i| {
                    let t = format!("i-{gen:04}-{i:012}");
                    (s.intern(&t), t)
                })
                .collect();
            for (sym, _) in live.drain(..) {
                s.release(sym);
            }
            live = next;
            for (sym, t) in &live {
                assert_eq!(s.get(*sym), t);
                assert_eq!(s.lookup(t), Some(*sym));
            }
            assert_eq!(s.get(b), "eu-west-1");
        }
        assert_eq!(s.len(), 2001);
        assert!(
            s.arena.len() <= 4 * 2001 * 19 + COMPACT_FROM,
            "arena {}",
            s.arena.len()
        );
        assert!(s.entries.len() <= 2 * 2001 + 1);
    }
}
