//! The durable store: one redb file under `--root`, written only by the daemon.
//!
//! Records are JSON values of the core model, keyed by id. Nothing that can be
//! derived is stored twice: addresses in use are the endpoints of the stored
//! containers, so "allocate an address" and "record who has it" are one write.
//!
//! Durability: a request's *intent* (the state it moves to before touching
//! the kernel) is written before the kernel is touched and made durable
//! (fsync) while the kernel work runs; the request is acknowledged only when
//! both are done. Its *completion* is committed without fsync (redb makes it
//! durable with the next fsync'd commit). After a crash the daemon may find
//! a completed request still marked in-progress (recovery checks the kernel
//! and finishes it, idempotently), or kernel objects of a request whose
//! intent never reached the disk (the request was never acknowledged; the
//! reconciler removes them, since everything berth creates is recognisable
//! as berth's: `bthv` veths, bridges with berth's alias, its own nft table).

use std::path::Path;

use berth_core::model::{Container, Network, Policy};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DaemonError, Result};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");

/// One change to the store.
pub enum Op<'a> {
    PutNetwork(&'a Network),
    DelNetwork(&'a str),
    PutContainer(&'a Container),
    DelContainer(&'a str),
    PutPolicy(&'a Policy),
    DelPolicy(&'a str),
}

pub struct Store {
    db: Database,
}

/// Everything the store holds, loaded at start.
#[derive(Default)]
pub struct Snapshot {
    pub networks: Vec<Network>,
    pub containers: Vec<Container>,
    pub policies: Vec<Policy>,
}

fn se(e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Store(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model values always serialize")
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                DaemonError::Store(format!("{} is in use by another berth daemon", path.display()))
            }
            e => se(format!("{}: {e}", path.display())),
        })?;
        let tx = db.begin_write().map_err(se)?;
        for t in [NETWORKS, CONTAINERS, POLICIES] {
            tx.open_table(t).map_err(se)?;
        }
        tx.commit().map_err(se)?;
        Ok(Store { db })
    }

    /// Applies `ops` in one transaction. `durable` waits for fsync.
    pub fn commit(&self, ops: &[Op], durable: bool) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(se)?;
        tx.set_durability(if durable { Durability::Immediate } else { Durability::None }).map_err(se)?;
        {
            let mut nets = tx.open_table(NETWORKS).map_err(se)?;
            let mut ctrs = tx.open_table(CONTAINERS).map_err(se)?;
            let mut pols = tx.open_table(POLICIES).map_err(se)?;
            for op in ops {
                match op {
                    Op::PutNetwork(n) => nets.insert(n.id.as_str(), enc(n).as_slice()).map(|_| ()),
                    Op::DelNetwork(id) => nets.remove(*id).map(|_| ()),
                    Op::PutContainer(c) => ctrs.insert(c.id.as_str(), enc(c).as_slice()).map(|_| ()),
                    Op::DelContainer(id) => ctrs.remove(*id).map(|_| ()),
                    Op::PutPolicy(p) => pols.insert(p.id.as_str(), enc(p).as_slice()).map(|_| ()),
                    Op::DelPolicy(id) => pols.remove(*id).map(|_| ()),
                }
                .map_err(se)?;
            }
        }
        tx.commit().map_err(se)
    }

    /// Makes every earlier commit durable (an empty commit with fsync).
    pub fn flush(&self) -> Result<()> {
        self.commit(&[], true)
    }

    pub fn load(&self) -> Result<Snapshot> {
        let tx = self.db.begin_read().map_err(se)?;
        fn all<T: DeserializeOwned>(tx: &redb::ReadTransaction, t: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
            let table = tx.open_table(t).map_err(se)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(se)? {
                let (k, v) = row.map_err(se)?;
                out.push(serde_json::from_slice(v.value()).map_err(|e| se(format!("record {}: {e}", k.value())))?);
            }
            Ok(out)
        }
        Ok(Snapshot { networks: all(&tx, NETWORKS)?, containers: all(&tx, CONTAINERS)?, policies: all(&tx, POLICIES)? })
    }

    /// A stable text dump of every record (for byte-for-byte comparisons in tests).
    pub fn dump(&self) -> Result<String> {
        let tx = self.db.begin_read().map_err(se)?;
        let mut s = String::new();
        for (name, t) in [("networks", NETWORKS), ("containers", CONTAINERS), ("policies", POLICIES)] {
            let table = tx.open_table(t).map_err(se)?;
            for row in table.iter().map_err(se)? {
                let (k, v) = row.map_err(se)?;
                s.push_str(&format!("{name}/{} {}\n", k.value(), String::from_utf8_lossy(v.value())));
            }
        }
        Ok(s)
    }
}
