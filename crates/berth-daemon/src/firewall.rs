//! Bookkeeping of the elements berth has put in `inet berth`.
//!
//! Every element exists because of one or more owners (a network, a live
//! container; a link element is owned by both containers). Each request says
//! what its owners want *now*; the difference to what they wanted before is
//! sent as one batch. Reference counts keep an element wanted by two owners
//! until neither wants it. The owners' wants are computed while this lock is
//! held, so two requests can never apply stale views in the wrong order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use berth_core::nft::Element;

use crate::error::Result;
use berth_linux::kernel::Kernel;

pub type Owner = String;

pub fn net_owner(id: &str) -> Owner {
    format!("net:{id}")
}

pub fn ctr_owner(id: &str) -> Owner {
    format!("ctr:{id}")
}

#[derive(Default)]
struct Books {
    owned: HashMap<Owner, BTreeSet<Element>>,
    count: HashMap<Element, u32>,
}

#[derive(Default)]
pub struct Firewall {
    books: Mutex<Books>,
}

impl Firewall {
    /// Brings the given owners to their new wants. `compute` runs under this
    /// lock and returns (owner, wanted elements) pairs; an owner that wants
    /// nothing is forgotten.
    pub fn sync(&self, kernel: &dyn Kernel, compute: impl FnOnce() -> Vec<(Owner, BTreeSet<Element>)>) -> Result<()> {
        let mut books = self.books.lock().unwrap();
        let updates = compute();
        let mut count = books.count.clone();
        let (mut add, mut del) = (BTreeSet::new(), BTreeSet::new());
        for (owner, want) in &updates {
            let empty = BTreeSet::new();
            let had = books.owned.get(owner).unwrap_or(&empty);
            for e in want.difference(had) {
                let c = count.entry(e.clone()).or_insert(0);
                *c += 1;
                if *c == 1 {
                    del.remove(e);
                    add.insert(e.clone());
                }
            }
            for e in had.difference(want) {
                let c = count.get_mut(e).expect("owned elements are counted");
                *c -= 1;
                if *c == 0 {
                    count.remove(e);
                    if !add.remove(e) {
                        del.insert(e.clone());
                    }
                }
            }
        }
        kernel.apply_elements(&del, &add)?;
        books.count = count;
        for (owner, want) in updates {
            if want.is_empty() {
                books.owned.remove(&owner);
            } else {
                books.owned.insert(owner, want);
            }
        }
        Ok(())
    }

    /// Replaces the whole table (reconcile) and the books with it.
    pub fn reset(&self, kernel: &dyn Kernel, all: Vec<(Owner, BTreeSet<Element>)>) -> Result<()> {
        let mut books = self.books.lock().unwrap();
        let mut fresh = Books::default();
        for (owner, want) in all {
            for e in &want {
                *fresh.count.entry(e.clone()).or_insert(0) += 1;
            }
            if !want.is_empty() {
                fresh.owned.insert(owner, want);
            }
        }
        let elements: BTreeSet<Element> = fresh.count.keys().cloned().collect();
        kernel.reset_table(&elements)?;
        *books = fresh;
        Ok(())
    }

    /// Every element berth believes is in the kernel.
    pub fn elements(&self) -> BTreeSet<Element> {
        self.books.lock().unwrap().count.keys().cloned().collect()
    }
}
