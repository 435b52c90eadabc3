//! Which shard an object belongs to, and which shards this replica should try to take or
//! give away — pure functions of what the Leases say, so that every replica, seeing the
//! same Leases, draws the same conclusions.
//!
//! Objects are spread by a stable hash (64-bit FNV-1a, fixed forever: replicas of different
//! versions must agree) of `namespace/name`, or of the namespace alone. Shards are spread
//! between live replicas so that each holds at most ⌈shards/replicas⌉ and, once stable, at
//! least ⌊shards/replicas⌋: a replica below its share takes free shards (those whose holder
//! released them or stopped renewing), trying them in its own order (rendezvous hashing of
//! identity and shard) so that replicas starting together rarely race for the same one; a
//! replica above ⌈…⌉ releases the excess; and when some replica is below ⌊…⌋ while none is
//! free, the replica holding the most gives one away.

use std::collections::{BTreeMap, BTreeSet};

/// What the shard of an object is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ShardBy {
    /// `namespace/name`: objects spread evenly.
    #[default]
    Name,
    /// The namespace alone: a tenant's objects stay together on one replica.
    Namespace,
}

/// 64-bit FNV-1a. Written out because the shard of an object must never change with a
/// library's version or a process's random seed.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The shard (0‥`shards`) of an object.
pub fn shard_of(by: ShardBy, shards: u32, namespace: Option<&str>, name: &str) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let ns = namespace.unwrap_or("").as_bytes();
    let h = match by {
        ShardBy::Name => fnv1a(&[ns, b"/", name.as_bytes()]),
        ShardBy::Namespace => fnv1a(&[ns]),
    };
    (h % u64::from(shards)) as u32
}

/// What one replica sees: the live replicas, who holds each shard, and its own holdings.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// This replica's identity.
    pub me: &'a str,
    /// Identities of the live replicas (this one included).
    pub members: BTreeSet<&'a str>,
    /// The live holder of each shard (`None`: free, or its holder stopped renewing).
    pub holders: Vec<Option<&'a str>>,
    /// Shards this replica holds.
    pub mine: BTreeSet<u32>,
    /// Shards this replica is trying to take.
    pub contending: BTreeSet<u32>,
}

/// What this replica should do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Start trying to take these shards.
    pub contend: Vec<u32>,
    /// Give these shards away (release their Leases).
    pub release: Vec<u32>,
    /// Stop trying to take these (someone else took them, or no longer needed).
    pub abandon: Vec<u32>,
}

impl View<'_> {
    /// At most this many shards each, once stable: ⌈shards/replicas⌉.
    pub fn ceiling(&self) -> usize {
        let (n, r) = (self.holders.len(), self.members.len().max(1));
        n.div_ceil(r)
    }

    /// At least this many each, once stable: ⌊shards/replicas⌋.
    pub fn floor(&self) -> usize {
        self.holders.len() / self.members.len().max(1)
    }

    fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = self.members.iter().map(|m| (*m, 0)).collect();
        for h in self.holders.iter().flatten() {
            if *h != self.me
                && let Some(c) = counts.get_mut(h)
            {
                *c += 1;
            }
        }
        counts.insert(self.me, self.mine.len());
        counts
    }

    /// This replica's preference for `shard` (lower is preferred).
    fn rank(&self, shard: u32) -> u64 {
        fnv1a(&[self.me.as_bytes(), b"#", &shard.to_le_bytes()])
    }

    /// The plan for this view.
    pub fn plan(&self) -> Plan {
        let (floor, ceiling) = (self.floor(), self.ceiling());
        let counts = self.counts();
        let mine = self.mine.len();
        let starving = counts.values().any(|c| *c < floor);
        let mut plan = Plan::default();

        // Give away: everything above the ceiling; one shard, by the richest replica only,
        // when another is below the floor (everyone agrees who the richest is).
        let give = if mine > ceiling {
            mine - ceiling
        } else if mine > floor && starving && self.richest(&counts) {
            1
        } else {
            0
        };
        let mut by_rank: Vec<u32> = self.mine.iter().copied().collect();
        by_rank.sort_by_key(|s| std::cmp::Reverse(self.rank(*s)));
        plan.release = by_rank.into_iter().take(give).collect();

        // Stop trying where another live replica holds the shard, or where it is ours now.
        plan.abandon = self
            .contending
            .iter()
            .copied()
            .filter(|s| {
                self.mine.contains(s) || self.holders.get(*s as usize).is_some_and(|h| h.is_some_and(|h| h != self.me))
            })
            .collect();
        let still = self.contending.len() - plan.abandon.len();

        // Take: up to the floor; one more (up to the ceiling) when nobody is below the floor.
        let want = if mine < floor {
            floor - mine
        } else if give == 0 && mine < ceiling && !starving {
            1
        } else {
            0
        };
        let mut free: Vec<u32> = (0..self.holders.len() as u32)
            .filter(|s| self.holders[*s as usize].is_none() && !self.mine.contains(s) && !self.contending.contains(s))
            .collect();
        free.sort_by_key(|s| self.rank(*s));
        plan.contend = free.into_iter().take(want.saturating_sub(still)).collect();
        plan
    }

    fn richest(&self, counts: &BTreeMap<&str, usize>) -> bool {
        let max = counts.values().copied().max().unwrap_or(0);
        // BTreeMap order: the first replica (by identity) among those holding the most.
        counts.iter().find(|(_, c)| **c == max).is_some_and(|(m, _)| *m == self.me)
    }
}

#[cfg(test)]
mod tests;
