//! The session with etcd: register, list, watch; start over on any error.
//!
//! `etcd-client` never resumes a watch or a keep-alive stream after the
//! connection drops (the client itself reconnects), so every failure ends
//! the session and the loop starts a new one after a short backoff. A new
//! session keeps this host's leases if they are still alive (a short etcd
//! restart or partition changes nothing for the others) and takes new
//! ones otherwise, re-announcing everything on them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_core::cluster::keys::PREFIX;
use berth_core::cluster::records::to_json;
use berth_core::cluster::view::Changed;
use berth_core::cluster::{ClusterView, Event, Key, NodeInfo, NodeRecord};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use super::etcd::humanize;
use super::Cluster;
use crate::daemon::Daemon;

type R<T> = std::result::Result<T, String>;

fn e(err: etcd_client::Error) -> String {
    humanize(&err)
}

/// Runs sessions for as long as the daemon lives.
pub async fn run(cl: Arc<Cluster>, d: Weak<Daemon>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(daemon) = d.upgrade() else { return };
        let started = std::time::Instant::now();
        let err = session(&cl, &daemon).await.err().unwrap_or_else(|| "session ended".into());
        drop(daemon);
        cl.set_status(false, Some(err));
        // A session that ran a while starts over at once.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

enum WatchEnd {
    /// The revision we watched from is compacted away: list again.
    Compacted,
}

async fn session(cl: &Arc<Cluster>, d: &Arc<Daemon>) -> R<()> {
    let mut c = cl.client().await?;
    let registered = register(cl, d, &mut c).await?;
    let mut resume = resume_point(cl, &mut c).await?;
    loop {
        let rev = match resume.take() {
            Some(r) => r,
            None => relist(cl, &mut c).await?,
        };
        cl.set_status(true, None);
        cl.kick();
        let (mut wc, mut kc) = (c.clone(), c.clone());
        let ended = tokio::select! {
            r = watch(cl, &mut wc, rev, registered) => r?,
            r = keep_alive(cl, &mut kc) => return r,
        };
        match ended {
            WatchEnd::Compacted => tracing::info!("cluster store: watch from revision {} compacted away; listing again", rev + 1),
        }
    }
}

/// Where a reconnecting session can go on watching without a listing:
/// the revision of the view, if the store has been listed in this run
/// (so what the announcer wrote is known) and the store has not gone back
/// in time (an etcd rebuilt from scratch). A watch from there replays what
/// happened meanwhile, or is cancelled as compacted, and then a listing
/// follows.
async fn resume_point(cl: &Cluster, c: &mut Client) -> R<Option<i64>> {
    if !cl.listed.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let have = cl.view().revision;
    cl.count(PREFIX.len());
    let now = c.get(PREFIX, Some(GetOptions::new().with_prefix().with_count_only())).await.map_err(e)?.header().map(|h| h.revision()).unwrap_or(0);
    Ok((have > 0 && now >= have).then_some(have))
}

/// A lease that is still alive keeps its id; else a new one.
async fn lease(cl: &Cluster, c: &mut Client, have: Option<i64>, ttl: u64) -> R<(i64, bool)> {
    if let Some(id) = have {
        cl.count(16);
        if c.lease_time_to_live(id, None).await.map_err(e)?.ttl() > 0 {
            return Ok((id, false));
        }
    }
    cl.count(16);
    Ok((c.lease_grant(ttl as i64, None).await.map_err(e)?.id(), true))
}

/// Puts this host in the store: its leases, its record (refusing a name
/// another host holds), and its address blocks (kept from before).
/// Returns the revision of its record.
async fn register(cl: &Arc<Cluster>, d: &Arc<Daemon>, c: &mut Client) -> R<i64> {
    let (me, my_id, kept_grace, kept_live) = {
        let i = cl.identity.lock().unwrap();
        (i.name.clone(), i.id.clone(), i.grace_lease, i.live_lease)
    };
    let prev = *cl.leases.lock().unwrap();
    let (live, new_live) = lease(cl, c, prev.live.or(kept_live), cl.cfg.ttl).await?;
    let (grace, new_grace) = lease(cl, c, prev.grace.or(kept_grace), cl.cfg.grace).await?;
    let node_key = Key::Node(me.clone()).render();
    cl.count(node_key.len());
    let existing = c.get(node_key.as_str(), None).await.map_err(e)?;
    if let Some(kv) = existing.kvs().first() {
        if let Ok(rec) = serde_json::from_slice::<NodeRecord>(kv.value()) {
            if rec.id != my_id {
                return Err(format!(
                    "node name {me} is in use by another host (advertising {}): give this host its own --node-name",
                    rec.advertise
                ));
            }
        }
    }
    let rec = NodeRecord { id: my_id, advertise: cl.underlay.addr, version: env!("CARGO_PKG_VERSION").into(), started: crate::util::now() };
    let rec = to_json(&rec);
    cl.count(node_key.len() + rec.len());
    let put = c.put(node_key, rec, Some(PutOptions::new().with_lease(live))).await.map_err(e)?;
    let registered = put.header().map(|h| h.revision()).unwrap_or(0);
    put_info(cl, c, grace).await?;
    if new_live {
        // A new liveness lease: the previous one's endpoints are stale
        // once everything is announced again on the new one.
        cl.announced.lock().await.clear();
    }
    {
        let mut l = cl.leases.lock().unwrap();
        if new_live {
            l.stale_live = prev.live.or(kept_live).or(l.stale_live);
        }
        l.live = Some(live);
        l.grace = Some(grace);
    }
    {
        let mut i = cl.identity.lock().unwrap();
        if i.grace_lease != Some(grace) || i.live_lease != Some(live) {
            i.grace_lease = Some(grace);
            i.live_lease = Some(live);
            let _ = super::identity::save(&d.cfg.root, &i);
        }
    }
    if new_grace {
        tracing::info!("cluster store: new grace lease {grace:x} for this host's address blocks");
    }
    claim_blocks(cl, d, c, grace).await?;
    Ok(registered)
}

/// `nodeinfo/NODE`: when this host was last seen, kept past its death.
async fn put_info(cl: &Cluster, c: &mut Client, grace: i64) -> R<()> {
    let key = Key::NodeInfo(cl.node()).render();
    let v = to_json(&NodeInfo { advertise: cl.underlay.addr, last_seen: crate::util::now() });
    cl.count(key.len() + v.len());
    c.put(key, v, Some(PutOptions::new().with_lease(grace))).await.map_err(e)?;
    Ok(())
}

/// Puts this host's blocks (from its own store) back on its grace lease:
/// a block nobody holds is taken again, one this host holds is moved to
/// the current lease, and one another host took meanwhile (this host was
/// gone longer than the grace) is given up here, loudly.
async fn claim_blocks(cl: &Cluster, d: &Arc<Daemon>, c: &mut Client, grace: i64) -> R<()> {
    let me = cl.node();
    let mine: Vec<(String, ipnet::IpNet)> =
        d.st().networks.values().filter(|n| n.global).flat_map(|n| n.blocks.iter().map(|b| (n.id.clone(), *b)).collect::<Vec<_>>()).collect();
    for (net, block) in mine {
        let key = Key::Block { network: net.clone(), block }.render();
        let val = to_json(&berth_core::cluster::BlockRecord { node: me.clone() });
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), val.as_str(), Some(PutOptions::new().with_lease(grace)))])
            .or_else([TxnOp::get(key.as_str(), None)]);
        cl.count(key.len() * 2 + val.len());
        let r = c.txn(txn).await.map_err(e)?;
        if r.succeeded() {
            continue;
        }
        let holder = r.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| serde_json::from_slice::<berth_core::cluster::BlockRecord>(kv.value()).ok()),
            _ => None,
        });
        match holder {
            Some(h) if h.node == me => {
                cl.count(key.len() + val.len());
                c.put(key, val, Some(PutOptions::new().with_lease(grace))).await.map_err(e)?;
            }
            Some(h) => {
                tracing::error!("address block {block} of network {net} is now held by host {} (this host was gone longer than blocks.grace): giving it up here", h.node);
                d.drop_block(&net, block);
            }
            None => {}
        }
    }
    Ok(())
}

/// Lists everything berth keeps in the store; the view becomes exactly that.
async fn relist(cl: &Arc<Cluster>, c: &mut Client) -> R<i64> {
    cl.count(PREFIX.len());
    let r = c.get(PREFIX, Some(GetOptions::new().with_prefix())).await.map_err(e)?;
    let rev = r.header().map(|h| h.revision()).unwrap_or(0);
    let me = cl.node();
    let live = cl.leases.lock().unwrap().live;
    let mut mine = std::collections::BTreeMap::new();
    let mut kvs = Vec::with_capacity(r.kvs().len());
    for kv in r.kvs() {
        let (Ok(k), Ok(v)) = (kv.key_str(), kv.value_str()) else { continue };
        // What the store has of ours on the current liveness lease is what
        // the announcer has written (records on an older lease are re-put).
        if matches!(Key::parse(k), Some(Key::Endpoint { node, .. }) if node == me) && Some(kv.lease()) == live {
            mine.insert(k.to_string(), v.to_string());
        }
        kvs.push((k.to_string(), v.to_string()));
    }
    cl.bytes.fetch_add(kvs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(), Ordering::Relaxed);
    let (view, errors) = ClusterView::from_listing(kvs, rev);
    for err in errors {
        tracing::warn!("cluster store: record skipped: {err}");
    }
    *cl.announced.lock().await = mine;
    *cl.view() = view;
    cl.listed.store(true, Ordering::SeqCst);
    cl.changed(Changed::ALL);
    Ok(rev)
}

/// Follows the store from `rev + 1` until an error or a compaction.
/// `registered`: the revision of this host's record; a deletion of it
/// after that means its lease ran out.
async fn watch(cl: &Arc<Cluster>, c: &mut Client, rev: i64, registered: i64) -> R<WatchEnd> {
    let mut stream = c.watch(PREFIX, Some(WatchOptions::new().with_prefix().with_start_revision(rev + 1))).await.map_err(e)?;
    let me_key = Key::Node(cl.node()).render();
    while let Some(resp) = stream.message().await.map_err(e)? {
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                return Ok(WatchEnd::Compacted);
            }
            return Err(format!("watch cancelled by the store: {}", resp.cancel_reason()));
        }
        let mut ch = Changed::default();
        let mut lost = false;
        {
            let mut v = cl.view();
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let Ok(key) = kv.key_str() else { continue };
                cl.bytes.fetch_add((kv.key().len() + kv.value().len()) as u64, Ordering::Relaxed);
                let event = match ev.event_type() {
                    etcd_client::EventType::Put => Event::Put { key: key.to_string(), value: kv.value_str().unwrap_or_default().to_string() },
                    etcd_client::EventType::Delete => {
                        lost |= key == me_key && kv.mod_revision() > registered;
                        Event::Delete { key: key.to_string() }
                    }
                };
                match v.apply(&event) {
                    Ok(c) => ch.merge(c),
                    Err(err) => tracing::warn!("cluster store: record skipped: {err}"),
                }
                v.revision = v.revision.max(kv.mod_revision());
            }
            if let Some(h) = resp.header() {
                v.revision = v.revision.max(h.revision());
            }
        }
        cl.changed(ch);
        if lost {
            // Our liveness lease ran out (we were cut off longer than the
            // TTL): the others have taken our tunnels away; register again.
            cl.leases.lock().unwrap().live = None;
            return Err("this host's liveness lease expired in the store; registering again".into());
        }
    }
    Err("the store closed the watch".into())
}

/// Keeps both leases alive (every third of the TTL) and refreshes
/// `nodeinfo` every minute; returns when a lease is gone or the
/// connection fails.
async fn keep_alive(cl: &Arc<Cluster>, c: &mut Client) -> R<()> {
    let (live, grace) = {
        let l = cl.leases.lock().unwrap();
        (l.live.ok_or("no liveness lease")?, l.grace.ok_or("no grace lease")?)
    };
    let (mut k1, mut s1) = c.lease_keep_alive(live).await.map_err(e)?;
    let (mut k2, mut s2) = c.lease_keep_alive(grace).await.map_err(e)?;
    let period = Duration::from_millis((cl.cfg.ttl * 1000 / 3).max(500));
    let mut tick = tokio::time::interval(period);
    let mut last_info = std::time::Instant::now();
    loop {
        tick.tick().await;
        for (k, s, which) in [(&mut k1, &mut s1, "liveness"), (&mut k2, &mut s2, "grace")] {
            cl.count(16);
            k.keep_alive().await.map_err(e)?;
            // A store that stopped answering (frozen, partitioned) is noticed
            // here, long before HTTP/2's own keep-alive would.
            let answer = tokio::time::timeout(period * 2, s.message())
                .await
                .map_err(|_| format!("no {which} keep-alive answer within {} ms", (period * 2).as_millis()))?;
            let r = answer.map_err(e)?.ok_or_else(|| format!("{which} keep-alive stream closed"))?;
            if r.ttl() <= 0 {
                let mut l = cl.leases.lock().unwrap();
                if which == "liveness" {
                    l.live = None;
                } else {
                    l.grace = None;
                }
                return Err(format!("this host's {which} lease expired in the store; registering again"));
            }
        }
        if last_info.elapsed() > Duration::from_secs(60) {
            put_info(cl, c, grace).await?;
            last_info = std::time::Instant::now();
        }
    }
}
