//! Which objects this replica may act on: leader election and sharding on
//! `coordination.k8s.io/v1` Leases. Beside the data path: the dispatcher asks
//! [`Ownership::owns`] before it queues, calls or applies anything for an object; the
//! engine is told which shards were gained ([`Gained`]) so it can replay their cached
//! objects to the plugins.
//!
//! - Leader election (`--leader-elect`) is one shard: the Lease `<lease-name>`.
//! - Sharding (`--shards N`) has a Lease per shard, `<lease-name>-shard-<i>`, and one
//!   membership Lease per replica, `<lease-name>-member-<identity>`, which tells the others
//!   it is alive; shards are spread between the live members ([`plan`]).
//!
//! Leases are taken, renewed and released by kube-lease-manager ([`hold`]); what they say
//! is watched ([`observe`]). A held shard counts only while this process has seen its own
//! renewal within the renew deadline, which is shorter than the lease duration: a holder cut
//! off from the API server stops acting before anyone else may take over.

pub mod hold;
pub mod observe;
pub mod plan;

pub use hold::{Timings, TimingsError};
pub use plan::{ShardBy, shard_of};

use hold::Hold;
use k8s_openapi::api::coordination::v1::Lease;
use observe::Observer;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How replicas share the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease (leader election), or the prefix of the shard and membership Leases.
    pub name: String,
    /// Namespace of the Leases.
    pub namespace: String,
    /// This replica's identity (its Pod name in a cluster).
    pub identity: String,
    /// Shards (1: leader election).
    pub shards: u32,
    /// What an object's shard is computed from.
    pub shard_by: ShardBy,
    /// Lease timings.
    pub timings: Timings,
}

impl LeaseConfig {
    fn shard_lease(&self, shard: u32) -> String {
        if self.shards == 1 { self.name.clone() } else { format!("{}-shard-{shard}", self.name) }
    }

    fn member_lease(&self, identity: &str) -> String {
        format!("{}-member-{identity}", self.name)
    }

    /// Checks the timings and that every Lease name is a valid object name.
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        self.timings.validate()?;
        if self.shards == 0 {
            return Err(LeaseConfigError::NoShards);
        }
        let longest = if self.shards == 1 { self.name.clone() } else { self.member_lease(&self.identity) };
        for name in [longest, self.shard_lease(self.shards - 1)] {
            if !crate::names::is_dns_subdomain(&name) {
                return Err(LeaseConfigError::Name(name));
            }
        }
        Ok(())
    }

    fn shard_of_lease(&self, lease: &str) -> Option<u32> {
        if self.shards == 1 {
            return (lease == self.name).then_some(0);
        }
        let s: u32 = lease.strip_prefix(&self.name)?.strip_prefix("-shard-")?.parse().ok()?;
        (s < self.shards).then_some(s)
    }

    fn is_member_lease(&self, lease: &str) -> bool {
        self.shards > 1 && lease.strip_prefix(&self.name).is_some_and(|r| r.starts_with("-member-"))
    }
}

/// Why leader election cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseConfigError {
    /// Timings break client-go's rules.
    #[error(transparent)]
    Timings(#[from] TimingsError),
    /// `--shards 0`.
    #[error("--shards must be at least 1")]
    NoShards,
    /// A Lease name built from `--lease-name` and the identity is not a valid object name.
    #[error(
        "Lease name {0:?} is not a valid object name (lowercase letters, digits, '-', '.'; at most 253): check --lease-name and the identity (POD_NAME)"
    )]
    Name(String),
}

/// This process's identity when none is given: `POD_NAME` (downward API) in a cluster;
/// elsewhere the host name with a random suffix (as client-go does), lowercased to a valid
/// object name.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let clean: String =
        host.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let clean = clean.trim_matches('-');
    format!("{}-{:05x}", if clean.is_empty() { "kreflex" } else { clean }, rand::random::<u32>() & 0xfffff)
}

/// The gate the dispatcher asks. Cheap to clone and to ask (a read lock and a clock read).
#[derive(Clone, Default)]
pub struct Ownership {
    inner: Option<Arc<Shared>>,
}

struct Shared {
    shards: u32,
    by: ShardBy,
    /// Per shard: acting on it is allowed until this instant (`None`: not held).
    until: RwLock<Vec<Option<Instant>>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership").field("held", &self.held()).finish()
    }
}

impl Ownership {
    /// Everything is this replica's (no leader election, no sharding).
    pub fn everything() -> Self {
        Self { inner: None }
    }

    fn shared(shards: u32, by: ShardBy) -> Self {
        Self { inner: Some(Arc::new(Shared { shards, by, until: RwLock::new(vec![None; shards as usize]) })) }
    }

    /// Whether this replica may act on the object now.
    pub fn owns(&self, namespace: Option<&str>, name: &str) -> bool {
        let Some(s) = &self.inner else { return true };
        let shard = shard_of(s.by, s.shards, namespace, name);
        s.until.read()[shard as usize].is_some_and(|until| Instant::now() < until)
    }

    /// Shards held now, and how many there are.
    pub fn held(&self) -> (Vec<u32>, u32) {
        let Some(s) = &self.inner else { return (vec![0], 1) };
        let now = Instant::now();
        let until = s.until.read();
        let held = until.iter().enumerate().filter(|(_, u)| u.is_some_and(|u| now < u)).map(|(i, _)| i as u32);
        (held.collect(), s.shards)
    }

    /// Whether leader election or sharding decides (false: this replica owns everything).
    pub fn is_elected(&self) -> bool {
        self.inner.is_some()
    }

    /// How this replica's role reads in `/readyz` and `kreflex plugins`.
    pub fn describe(&self) -> String {
        let (held, shards) = self.held();
        match (&self.inner, shards) {
            (None, _) => "acting on every object (no leader election)".into(),
            (Some(_), 1) if held.is_empty() => "standby (another replica is the leader)".into(),
            (Some(_), 1) => "leader".into(),
            (Some(_), n) => {
                let list: Vec<String> = held.iter().map(u32::to_string).collect();
                format!("holding {} of {n} shards [{}]", held.len(), list.join(","))
            }
        }
    }

    fn set(&self, until: Vec<Option<Instant>>) {
        if let Some(s) = &self.inner {
            *s.until.write() = until;
        }
    }
}

/// Shards this replica has just started to hold: their cached objects are to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gained {
    /// The shards.
    pub shards: Vec<u32>,
    /// How many there are.
    pub of: u32,
    /// The object-to-shard rule.
    pub by: ShardBy,
}

impl Gained {
    /// Whether the object is in one of the gained shards.
    pub fn contains(&self, namespace: Option<&str>, name: &str) -> bool {
        self.shards.contains(&shard_of(self.by, self.of, namespace, name))
    }
}

/// The running election: Lease holds, the Lease watch, and the planner loop.
pub struct Leadership {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Starts electing. Returns the gate and the stream of gained shards.
    pub fn start(
        client: kube::Client,
        config: LeaseConfig,
        metrics: crate::ops::Metrics,
    ) -> (Self, Ownership, mpsc::UnboundedReceiver<Gained>) {
        let ownership = Ownership::shared(config.shards, config.shard_by);
        let (gained_tx, gained) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let observer = Observer::default();
        let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &config.namespace);
        let ours = {
            let c = config.clone();
            move |name: &str| c.shard_of_lease(name).is_some() || c.is_member_lease(name)
        };
        tokio::spawn(observer.clone().run(api, ours, cancel.child_token()));
        let runner = Runner {
            client,
            config,
            observer,
            ownership: ownership.clone(),
            gained: gained_tx,
            metrics,
            holds: BTreeMap::new(),
            member: None,
            effective: BTreeSet::new(),
        };
        let task = tokio::spawn(runner.run(cancel.clone()));
        (Self { cancel, task }, ownership, gained)
    }

    /// Stops acting on everything at once, then releases every Lease (so a standby takes
    /// over within about a retry period). Call after in-flight work has drained.
    pub async fn release(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the leader election task failed");
        }
    }
}

struct Runner {
    client: kube::Client,
    config: LeaseConfig,
    observer: Observer,
    ownership: Ownership,
    gained: mpsc::UnboundedSender<Gained>,
    metrics: crate::ops::Metrics,
    /// Shard holds (held or being taken).
    holds: BTreeMap<u32, Hold>,
    /// The membership Lease (sharding only).
    member: Option<Hold>,
    /// Shards acted on as of the last pass.
    effective: BTreeSet<u32>,
}

impl Runner {
    async fn run(mut self, cancel: CancellationToken) {
        let c = &self.config;
        tracing::info!(identity = %c.identity, lease = %c.name, namespace = %c.namespace, shards = c.shards, "leader election started");
        if c.shards > 1 {
            let name = c.member_lease(&c.identity);
            self.member = Some(Hold::start(
                self.client.clone(),
                &c.namespace,
                &name,
                &c.identity,
                c.timings,
                self.observer.changed.clone(),
            ));
        }
        let mut tick = tokio::time::interval(self.config.timings.retry_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let changed = self.observer.changed.clone();
            let notified = changed.notified();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
                _ = notified => {}
            }
            self.pass();
        }
        // Stop acting first, then let the Leases go.
        self.ownership.set(vec![None; self.config.shards as usize]);
        self.publish(&BTreeSet::new());
        let timeout = self.config.timings.retry_period;
        let holds = std::mem::take(&mut self.holds).into_values().chain(self.member.take());
        futures::future::join_all(holds.map(|h| h.release(timeout))).await;
        tracing::info!(identity = %self.config.identity, "Leases released");
    }

    /// One look at the Leases: plan, start and stop holds, update the gate.
    fn pass(&mut self) {
        let now = Instant::now();
        let leases = self.observer.snapshot();
        let c = &self.config;
        let me = c.identity.as_str();
        let mut holders: Vec<Option<&str>> = vec![None; c.shards as usize];
        let mut members: BTreeSet<&str> = BTreeSet::new();
        members.insert(me);
        for (name, o) in &leases {
            if let Some(s) = c.shard_of_lease(name) {
                holders[s as usize] = o.live_holder(now);
            } else if c.is_member_lease(name)
                && let Some(h) = o.live_holder(now)
            {
                members.insert(h);
            }
        }
        let mine: BTreeSet<u32> = self.holds.iter().filter(|(_, h)| *h.held.borrow()).map(|(s, _)| *s).collect();
        // The gate: held by the manager's account AND our own renewal seen within the
        // renew deadline.
        let mut until = vec![None; c.shards as usize];
        for s in &mine {
            if let Some(o) = leases.get(&c.shard_lease(*s))
                && o.holder.as_deref() == Some(me)
            {
                let deadline = o.changed_at + c.timings.renew_deadline;
                if now < deadline {
                    until[*s as usize] = Some(deadline);
                }
            }
        }

        let mut plan = plan::Plan::default();
        if self.observer.synced() && (c.shards == 1 || self.member_ready(&leases)) {
            let contending: BTreeSet<u32> = self.holds.keys().copied().filter(|s| !mine.contains(s)).collect();
            let view = plan::View { me, members, holders, mine, contending };
            plan = view.plan();
            if plan != plan::Plan::default() {
                tracing::debug!(?plan, floor = view.floor(), ceiling = view.ceiling(), "shard plan");
            }
        }
        // A shard given away stops being acted on now; its Lease is released a retry period
        // later, once what was in flight for it has landed (each action checks the gate).
        for s in &plan.release {
            until[*s as usize] = None;
            if let Some(h) = self.holds.remove(s) {
                tracing::info!(shard = s, "giving a shard away to balance the replicas");
                let wait = c.timings.retry_period;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    h.release(wait).await;
                });
            }
        }
        for s in &plan.abandon {
            if let Some(h) = self.holds.remove(s) {
                tokio::spawn(h.release(c.timings.retry_period));
            }
        }
        for s in plan.contend {
            let name = c.shard_lease(s);
            let hold =
                Hold::start(self.client.clone(), &c.namespace, &name, me, c.timings, self.observer.changed.clone());
            self.holds.insert(s, hold);
        }
        let effective: BTreeSet<u32> =
            until.iter().enumerate().filter(|(_, u)| u.is_some()).map(|(i, _)| i as u32).collect();
        self.ownership.set(until);
        self.publish(&effective);
    }

    /// Our membership Lease is held and seen by the watch (others can count us).
    fn member_ready(&self, leases: &std::collections::HashMap<String, observe::Observed>) -> bool {
        let name = self.config.member_lease(&self.config.identity);
        self.member.as_ref().is_some_and(|m| *m.held.borrow())
            && leases.get(&name).is_some_and(|o| o.holder.as_deref() == Some(self.config.identity.as_str()))
    }

    /// Metrics, logs and replays for a change of what this replica acts on.
    fn publish(&mut self, effective: &BTreeSet<u32>) {
        if *effective == self.effective {
            return;
        }
        let gained: Vec<u32> = effective.difference(&self.effective).copied().collect();
        let lost: Vec<u32> = self.effective.difference(effective).copied().collect();
        let c = &self.config;
        if c.shards == 1 {
            if gained.is_empty() {
                tracing::warn!(identity = %c.identity, "lost leadership: stopped acting on objects");
            } else {
                tracing::info!(identity = %c.identity, "became the leader");
            }
        } else {
            tracing::info!(identity = %c.identity, ?gained, ?lost, held = ?effective, of = c.shards, "shards changed");
        }
        self.metrics.leader.set(i64::from(!effective.is_empty()));
        self.metrics.shards_held.set(effective.len() as i64);
        if !gained.is_empty() {
            let _ = self.gained.send(Gained { shards: gained, of: c.shards, by: c.shard_by });
        }
        self.effective = effective.clone();
    }
}
