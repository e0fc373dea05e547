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
//!
//! I/O errors (a full disk, most often): redb refuses every later write
//! until the database is closed and opened again. The store marks itself
//! broken on the first one; the daemon then reopens it (on the next write,
//! and every few seconds meanwhile) and writes back every record from its
//! in-memory state, which is always the truth: a request whose intent could
//! not be written undid itself, and one whose completion could not be
//! written is complete in the kernel and in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use berth_core::model::{Container, Network, Policy};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DaemonError, Result};

mod migrate;
pub use migrate::SCHEMA;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
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
    path: PathBuf,
    /// None while the file is closed after an I/O error and could not be
    /// opened again yet.
    db: RwLock<Option<Database>>,
    /// An I/O error happened: the database must be reopened and rewritten.
    broken: AtomicBool,
}

/// Why an upgrade failed: the database, or a record it could not read.
enum UpgradeError {
    Db(redb::Error),
    Record(String),
}

impl<E: Into<redb::Error>> From<E> for UpgradeError {
    fn from(e: E) -> Self {
        UpgradeError::Db(e.into())
    }
}

/// Everything the store holds, loaded at start.
#[derive(Default)]
pub struct Snapshot {
    pub networks: Vec<Network>,
    pub containers: Vec<Container>,
    pub policies: Vec<Policy>,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model values always serialize")
}

/// An I/O error said in words a user can act on, naming the directory.
pub fn io_message(dir: &Path, e: &std::io::Error) -> String {
    let dir = dir.display();
    match e.raw_os_error() {
        Some(libc::ENOSPC) => format!("disk full at {dir}: free some space there (berth writes its state back by itself once it can)"),
        Some(libc::EDQUOT) => format!("disk quota exceeded at {dir}: raise the quota or free some space there"),
        Some(libc::EROFS) => format!("{dir} is on a read-only file system: berth cannot record changes there"),
        Some(libc::EIO) => format!("I/O error writing {dir} (a failing disk?): {e}"),
        _ => format!("cannot write the store at {dir}: {e}"),
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Self::open_db(path)?;
        Ok(Store { path: path.to_path_buf(), db: RwLock::new(Some(db)), broken: AtomicBool::new(false) })
    }

    fn open_db(path: &Path) -> Result<Database> {
        let existed = path.exists();
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                DaemonError::Store(format!("{} is in use by another berth daemon", path.display()))
            }
            e => Self::error(path, e.into()),
        })?;
        let version = Self::schema_of(&db, existed).map_err(|e| Self::error(path, e))?;
        if version > SCHEMA {
            return Err(DaemonError::Store(format!(
                "{} was written by a newer berth (store schema {version}; this berth reads up to {SCHEMA}): run that berth, or a newer one",
                path.display()
            )));
        }
        if version < SCHEMA {
            // Keep the old file: an upgrade is one transaction, but a copy costs little.
            let backup = path.with_extension(format!("db.schema{version}"));
            std::fs::copy(path, &backup).map_err(|e| DaemonError::StoreUnavailable(io_message(Self::dir(path), &e)))?;
            tracing::info!("upgrading the store from schema {version} to {SCHEMA} (the old file is kept as {})", backup.display());
        }
        Self::upgrade(&db, version).map_err(|e| match e {
            UpgradeError::Db(e) => Self::error(path, e),
            UpgradeError::Record(m) => DaemonError::Store(format!("{}: upgrading from schema {version}: {m}", path.display())),
        })?;
        Ok(db)
    }

    /// The schema of an opened file: what its `meta` table says; a file
    /// that existed without one is schema 1; a new file is today's.
    fn schema_of(db: &Database, existed: bool) -> Result<u32, redb::Error> {
        let tx = db.begin_read()?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                let any = |t| tx.open_table(t).ok().and_then(|t: redb::ReadOnlyTable<&str, &[u8]>| t.iter().ok().map(|mut i| i.next().is_some())).unwrap_or(false);
                return Ok(if existed && (any(NETWORKS) || any(CONTAINERS) || any(POLICIES)) { 1 } else { SCHEMA });
            }
            Err(e) => return Err(e.into()),
        };
        let v = meta.get("schema")?.map(|v| String::from_utf8_lossy(v.value()).parse().unwrap_or(0)).unwrap_or(1);
        Ok(v)
    }

    /// Creates the tables, rewrites every record from `version` to today's
    /// shape and records the schema: one transaction.
    fn upgrade(db: &Database, version: u32) -> Result<(), UpgradeError> {
        let tx = db.begin_write()?;
        for (name, t) in [("networks", NETWORKS), ("containers", CONTAINERS), ("policies", POLICIES)] {
            let mut table = tx.open_table(t)?;
            if version == SCHEMA {
                continue;
            }
            let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let old: serde_json::Value = serde_json::from_slice(v.value()).map_err(|e| UpgradeError::Record(format!("{name}/{}: {e}", k.value())))?;
                let new = migrate::upgrade(name, version, old).map_err(|e| UpgradeError::Record(format!("{name}/{}: {e}", k.value())))?;
                rows.push((k.value().to_string(), serde_json::to_vec(&new).expect("JSON values serialize")));
            }
            for (k, v) in rows {
                table.insert(k.as_str(), v.as_slice())?;
            }
        }
        tx.open_table(META)?.insert("schema", SCHEMA.to_string().as_bytes())?;
        tx.commit()?;
        Ok(())
    }

    /// The directory the store lives in (what a user must free or fix).
    fn dir(path: &Path) -> &Path {
        path.parent().unwrap_or(path)
    }

    fn error(path: &Path, e: redb::Error) -> DaemonError {
        match e {
            redb::Error::Io(io) => DaemonError::StoreUnavailable(io_message(Self::dir(path), &io)),
            redb::Error::PreviousIo => DaemonError::StoreUnavailable(format!(
                "the store at {} had an I/O error and is being reopened; retry in a moment",
                Self::dir(path).display()
            )),
            e => DaemonError::Store(format!("{}: {e}", path.display())),
        }
    }

    /// Classifies a redb error and, for I/O errors, marks the store broken.
    fn fail(&self, e: redb::Error) -> DaemonError {
        let e = Self::error(&self.path, e);
        if matches!(e, DaemonError::StoreUnavailable(_)) {
            self.broken.store(true, Ordering::SeqCst);
        }
        e
    }

    /// Whether an I/O error left the store to be reopened and rewritten.
    pub fn needs_recovery(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Applies `ops` in one transaction. `durable` waits for fsync.
    pub fn commit(&self, ops: &[Op], durable: bool) -> Result<()> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        let Some(db) = guard.as_ref() else {
            return Err(self.fail(redb::Error::PreviousIo));
        };
        Self::write(db, ops, durable, false).map_err(|e| self.fail(e))
    }

    fn write(db: &Database, ops: &[Op], durable: bool, replace_all: bool) -> Result<(), redb::Error> {
        let mut tx = db.begin_write()?;
        tx.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        {
            let mut nets = tx.open_table(NETWORKS)?;
            let mut ctrs = tx.open_table(CONTAINERS)?;
            let mut pols = tx.open_table(POLICIES)?;
            if replace_all {
                nets.retain(|_, _| false)?;
                ctrs.retain(|_, _| false)?;
                pols.retain(|_, _| false)?;
            }
            for op in ops {
                match op {
                    Op::PutNetwork(n) => nets.insert(n.id.as_str(), enc(n).as_slice()).map(drop),
                    Op::DelNetwork(id) => nets.remove(*id).map(drop),
                    Op::PutContainer(c) => ctrs.insert(c.id.as_str(), enc(c).as_slice()).map(drop),
                    Op::DelContainer(id) => ctrs.remove(*id).map(drop),
                    Op::PutPolicy(p) => pols.insert(p.id.as_str(), enc(p).as_slice()).map(drop),
                    Op::DelPolicy(id) => pols.remove(*id).map(drop),
                }?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes every earlier commit durable (an empty commit with fsync).
    pub fn flush(&self) -> Result<()> {
        self.commit(&[], true)
    }

    /// After an I/O error: closes the database, opens it again and makes
    /// its records exactly `truth` (durably). Fails, leaving the store
    /// broken, while the cause (say, a full disk) remains.
    pub fn recover(&self, truth: &Snapshot) -> Result<()> {
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        if !self.needs_recovery() {
            return Ok(());
        }
        // Close first: redb holds a lock on the file while it is open.
        *guard = None;
        let db = Self::open_db(&self.path)?;
        let mut ops: Vec<Op> = truth.networks.iter().map(Op::PutNetwork).collect();
        ops.extend(truth.containers.iter().map(Op::PutContainer));
        ops.extend(truth.policies.iter().map(Op::PutPolicy));
        Self::write(&db, &ops, true, true).map_err(|e| Self::error(&self.path, e))?;
        *guard = Some(db);
        self.broken.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        let db = guard.as_ref().ok_or_else(|| Self::error(&self.path, redb::Error::PreviousIo))?;
        let tx = db.begin_read().map_err(|e| Self::error(&self.path, e.into()))?;
        f(&tx)
    }

    pub fn load(&self) -> Result<Snapshot> {
        fn all<T: DeserializeOwned>(path: &Path, tx: &redb::ReadTransaction, t: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
            let table = tx.open_table(t).map_err(|e| Store::error(path, e.into()))?;
            let mut out = Vec::new();
            for row in table.iter().map_err(|e| Store::error(path, e.into()))? {
                let (k, v) = row.map_err(|e| Store::error(path, e.into()))?;
                out.push(serde_json::from_slice(v.value()).map_err(|e| DaemonError::Store(format!("record {}: {e}", k.value())))?);
            }
            Ok(out)
        }
        self.read(|tx| {
            Ok(Snapshot {
                networks: all(&self.path, tx, NETWORKS)?,
                containers: all(&self.path, tx, CONTAINERS)?,
                policies: all(&self.path, tx, POLICIES)?,
            })
        })
    }

    /// A stable text dump of every record (for byte-for-byte comparisons in tests).
    pub fn dump(&self) -> Result<String> {
        let path = &self.path;
        self.read(|tx| {
            let mut s = String::new();
            for (name, t) in [("networks", NETWORKS), ("containers", CONTAINERS), ("policies", POLICIES)] {
                let table = tx.open_table(t).map_err(|e| Self::error(path, e.into()))?;
                for row in table.iter().map_err(|e| Self::error(path, e.into()))? {
                    let (k, v) = row.map_err(|e| Self::error(path, e.into()))?;
                    s.push_str(&format!("{name}/{} {}\n", k.value(), String::from_utf8_lossy(v.value())));
                }
            }
            Ok(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_directory_and_the_remedy() {
        let dir = Path::new("/var/lib/berth");
        let full = io_message(dir, &std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(full.starts_with("disk full at /var/lib/berth: free some space"), "{full}");
        assert!(io_message(dir, &std::io::Error::from_raw_os_error(libc::EROFS)).contains("read-only"));
    }
}
