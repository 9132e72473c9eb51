//! GTID sets for MySQL and MariaDB, printed exactly as the servers print them.
//!
//! # MySQL: inclusive ranges, as the server prints them
//!
//! A [`MysqlGtidSet`] maps a *TSID* (server uuid plus an optional MySQL 8.4+ tag) to
//! sorted, coalesced, non-overlapping **inclusive** ranges of sequence numbers
//! ([`GtidInterval`]): `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7` holds 1,2,3,4,5 and 7.
//! Sequence numbers are 1-based and at most [`MAX_MYSQL_SEQ`] (the server's `GNO_END` is
//! `INT64_MAX`, one past the largest GNO). Invariant: no TSID maps to an empty list and every
//! list is strictly increasing with gaps of at least one between ranges, so equal sets have
//! equal representations (derived `Eq`) and `Display` is canonical.
//!
//! `Display` is byte-for-byte what `SELECT @@GLOBAL.gtid_executed` returns: lowercase uuids
//! in uuid order, for each uuid the untagged intervals first and then each tag in
//! alphabetical order (`uuid:1-5:tag_a:1-3:tag_b:9`), uuid groups joined by `",\n"`, the
//! empty set as `""`. Source: mysql-server `sql/rpl_gtid_set.cc`
//! (`Gtid_set::default_string_format` uses `",\n"` between uuids and `Gtid_set::to_string`
//! walks `Tsid_map::get_sorted_sidno()`; `Tsid::operator<` in `libs/mysql/gtid/tsid.cpp`
//! orders by uuid then tag, and the empty (untagged) tag sorts first; `Tag::replace` in
//! `libs/mysql/gtid/tag.cpp` lowercases tags). [`MysqlGtidSet::to_compact_string`] joins
//! with `","` only; serde uses that compact form. Parsing accepts what the server accepts in
//! practice: upper or lower case uuids, whitespace around separators, `a-b` and `n`,
//! unsorted or overlapping intervals, repeated or empty comma items, tags in any case.
//! Manual: <https://dev.mysql.com/doc/refman/8.4/en/replication-gtids-concepts.html>.
//!
//! # The half-open conversion
//!
//! The replication protocol (`COM_BINLOG_DUMP_GTID`) and `mysql_common`'s
//! `GnoInterval::new(start, end)` use half-open `[start, end)` intervals.
//! [`MysqlGtidSet::to_half_open`] is the one place that converts: `a-b` becomes `(a, b + 1)`.
//! It keeps tags: `mysql_common` (0.38+) sends a tagged `Sid` (`Sid::with_tag`) and switches
//! the whole packet to the tagged wire format, which only servers that have tags (8.4+)
//! understand; a set read from an older server never holds tags.
//!
//! # MariaDB: last sequence number per (domain, server)
//!
//! MariaDB GTIDs are `domain-server-seq`. `@@gtid_binlog_state` keeps the last GTID per
//! (domain, server) and `@@gtid_binlog_pos`/`@@gtid_slave_pos` the last per domain; neither
//! is a set of ranges. [`MariadbGtidSet`] stores the last `seq` per `(domain, server)` and
//! prints `0-1-100,1-2-5` sorted by domain then server. "Contains" means "the stream has
//! passed it": `d-s-n` is contained if the largest `seq` recorded for domain `d` (over all
//! servers) is `>= n`, whatever `s` is. That is sound only while sequence numbers grow within
//! a domain, which `gtid_strict_mode` enforces.
//! Manual: <https://mariadb.com/kb/en/gtid/>.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Largest MySQL GTID sequence number (`GNO_END - 1`, `GNO_END` being `INT64_MAX`).
pub const MAX_MYSQL_SEQ: u64 = i64::MAX as u64 - 1;

/// Longest MySQL GTID tag, in characters.
pub const MAX_TAG_LEN: usize = 32;

/// How much of a bad input an error message quotes.
const QUOTE_LIMIT: usize = 200;

/// Errors from parsing or building GTIDs and GTID sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidError {
    /// Text that is not a GTID, GTID set or tag; `at` is the unparsed rest of `input`.
    #[error("invalid {what} {input:?} at {at:?}: {reason}")]
    Parse {
        what: &'static str,
        input: String,
        at: String,
        reason: &'static str,
    },
    /// An interval outside `1 <= start <= end <= MAX_MYSQL_SEQ`.
    #[error("invalid GTID interval {start}-{end}: expected 1 <= start <= end <= {MAX_MYSQL_SEQ}")]
    InvalidInterval { start: u64, end: u64 },
    /// A GTID of one flavour added to a set of the other.
    #[error("cannot add GTID {gtid} to a {set_flavour} GTID set")]
    FlavourMismatch {
        gtid: String,
        set_flavour: &'static str,
    },
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A MySQL 8.4+ GTID tag: `[a-z_][a-z0-9_]{0,31}`, lowercased on input as the server does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates and lowercases `s` (no surrounding whitespace allowed).
    pub fn new(s: &str) -> Result<Self, GtidError> {
        let mut c = Cursor::new("GTID tag", s);
        let tag = c.tag()?;
        c.end()?;
        Ok(tag)
    }

    /// The lowercase tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = GtidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::new(s)
    }
}

/// An inclusive range `start..=end` of MySQL sequence numbers, `1 <= start <= end <= MAX_MYSQL_SEQ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GtidInterval {
    start: u64,
    end: u64,
}

impl GtidInterval {
    /// The inclusive range `start..=end`.
    pub fn new(start: u64, end: u64) -> Result<Self, GtidError> {
        if start == 0 || start > end || end > MAX_MYSQL_SEQ {
            return Err(GtidError::InvalidInterval { start, end });
        }
        Ok(Self { start, end })
    }

    /// The one-transaction range `seq..=seq`.
    pub fn single(seq: u64) -> Result<Self, GtidError> {
        Self::new(seq, seq)
    }

    /// First sequence number (inclusive).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Last sequence number (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of transactions in the range (at least 1).
    pub fn count(&self) -> u64 {
        self.end - self.start + 1
    }
}

impl fmt::Display for GtidInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One transaction id: MySQL `uuid[:tag]:seq` or MariaDB `domain-server-seq`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gtid {
    Mysql {
        uuid: Uuid,
        tag: Option<Tag>,
        seq: u64,
    },
    Mariadb {
        domain: u32,
        server: u32,
        seq: u64,
    },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Mysql {
                uuid,
                tag: None,
                seq,
            } => write!(f, "{uuid}:{seq}"),
            Gtid::Mysql {
                uuid,
                tag: Some(tag),
                seq,
            } => write!(f, "{uuid}:{tag}:{seq}"),
            Gtid::Mariadb {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
        }
    }
}

impl FromStr for Gtid {
    type Err = GtidError;

    /// `uuid:seq`, `uuid:tag:seq` (any case) or `domain-server-seq`; surrounding whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = Cursor::new("GTID", s);
        c.skip_ws();
        let gtid = if s.contains(':') {
            let uuid = c.uuid()?;
            c.expect(b':', "expected ':' after uuid")?;
            let tag = if c.peek().is_some_and(is_tag_start) {
                let tag = c.tag()?;
                c.expect(b':', "expected ':' after tag")?;
                Some(tag)
            } else {
                None
            };
            let seq = c.mysql_seq()?;
            Gtid::Mysql { uuid, tag, seq }
        } else {
            let (domain, server, seq) = c.mariadb_triple()?;
            Gtid::Mariadb {
                domain,
                server,
                seq,
            }
        };
        c.skip_ws();
        c.end()?;
        Ok(gtid)
    }
}

/// A MySQL GTID set; see the module docs for the invariant and the print format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MysqlGtidSet {
    sets: BTreeMap<(Uuid, Option<Tag>), Vec<GtidInterval>>,
}

/// One TSID's intervals in the driver's half-open form; see [`MysqlGtidSet::to_half_open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfOpenSid {
    /// Server uuid bytes, as `mysql_common::packets::Sid::new` takes them.
    pub uuid: [u8; 16],
    /// Tag for `Sid::with_tag`, if any.
    pub tag: Option<Tag>,
    /// `(start, end_exclusive)` pairs, as `GnoInterval::new(start, end)` takes them.
    pub intervals: Vec<(u64, u64)>,
}

impl MysqlGtidSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the set holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Number of transactions (exact: the sum can exceed `u64`).
    pub fn count(&self) -> u128 {
        self.sets
            .values()
            .flatten()
            .map(|iv| u128::from(iv.count()))
            .sum()
    }

    /// `(uuid, tag, intervals)` in print order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, Option<&Tag>, &[GtidInterval])> + '_ {
        self.sets
            .iter()
            .map(|((uuid, tag), ivs)| (uuid, tag.as_ref(), ivs.as_slice()))
    }

    /// Adds one MySQL GTID; returns whether it was new. Errors on a MariaDB GTID or a `seq`
    /// outside `1..=MAX_MYSQL_SEQ`.
    pub fn insert(&mut self, gtid: &Gtid) -> Result<bool, GtidError> {
        let Gtid::Mysql { uuid, tag, seq } = gtid else {
            return Err(GtidError::FlavourMismatch {
                gtid: gtid.to_string(),
                set_flavour: "MySQL",
            });
        };
        let iv = GtidInterval::single(*seq)?;
        if self.contains(gtid) {
            return Ok(false);
        }
        self.insert_interval(*uuid, tag.clone(), iv);
        Ok(true)
    }

    /// Adds every transaction of `iv` under `(uuid, tag)`, merging with touching ranges.
    pub fn insert_interval(&mut self, uuid: Uuid, tag: Option<Tag>, iv: GtidInterval) {
        let ivs = self.sets.entry((uuid, tag)).or_default();
        // Ranges that overlap or touch `iv` form one contiguous run [lo, hi).
        let lo = ivs.partition_point(|x| x.end.saturating_add(1) < iv.start);
        let hi = ivs.partition_point(|x| x.start <= iv.end.saturating_add(1));
        let mut merged = iv;
        if lo < hi {
            merged.start = merged.start.min(ivs[lo].start);
            merged.end = merged.end.max(ivs[hi - 1].end);
        }
        ivs.splice(lo..hi, [merged]);
    }

    /// True when `gtid` is a MySQL GTID in the set.
    pub fn contains(&self, gtid: &Gtid) -> bool {
        let Gtid::Mysql { uuid, tag, seq } = gtid else {
            return false;
        };
        self.sets
            .get(&(*uuid, tag.clone()))
            .is_some_and(|ivs| ivs_contain(ivs, *seq))
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (key, ivs) in &other.sets {
            let mine = out.sets.entry(key.clone()).or_default();
            let mut all: Vec<GtidInterval> = mine.iter().chain(ivs).copied().collect();
            all.sort_unstable();
            *mine = coalesce(all);
        }
        out
    }

    /// `self \ other`: the transactions of `self` that are not in `other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut sets = BTreeMap::new();
        for (key, ivs) in &self.sets {
            let rest = match other.sets.get(key) {
                Some(theirs) => subtract_ivs(ivs, theirs),
                None => ivs.clone(),
            };
            if !rest.is_empty() {
                sets.insert(key.clone(), rest);
            }
        }
        Self { sets }
    }

    /// True when every transaction of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.sets.iter().all(|(key, ivs)| {
            other.sets.get(key).is_some_and(|theirs| {
                ivs.iter().all(|iv| {
                    // `theirs` is coalesced, so `iv` must fit inside a single range.
                    let i = theirs.partition_point(|t| t.end < iv.start);
                    theirs
                        .get(i)
                        .is_some_and(|t| t.start <= iv.start && iv.end <= t.end)
                })
            })
        })
    }

    /// `required \ self`: what `required` holds that `self` lacks. With `self` = the
    /// transactions we captured and `required` = the server's `@@gtid_purged`, a non-empty
    /// answer names transactions the server no longer has and we never saw.
    pub fn missing(&self, required: &Self) -> Self {
        required.subtract(self)
    }

    /// The set in the driver's half-open form, one entry per TSID in print order:
    /// inclusive `a-b` becomes `(a, b + 1)`, ready for `mysql_common`'s
    /// `GnoInterval::new(start, end_exclusive)`. The only inclusive/half-open conversion in
    /// dbtrail; tags are kept (see the module docs).
    pub fn to_half_open(&self) -> Vec<HalfOpenSid> {
        self.sets
            .iter()
            .map(|((uuid, tag), ivs)| HalfOpenSid {
                uuid: *uuid.as_bytes(),
                tag: tag.clone(),
                // end <= MAX_MYSQL_SEQ < u64::MAX, so end + 1 cannot overflow.
                intervals: ivs.iter().map(|iv| (iv.start, iv.end + 1)).collect(),
            })
            .collect()
    }

    /// The set with uuid groups joined by `","` (no newline); the serde form.
    pub fn to_compact_string(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_with(&mut s, ",");
        s
    }

    fn write_with(&self, f: &mut impl fmt::Write, sep: &str) -> fmt::Result {
        let mut prev: Option<&Uuid> = None;
        for ((uuid, tag), ivs) in &self.sets {
            if prev != Some(uuid) {
                if prev.is_some() {
                    f.write_str(sep)?;
                }
                write!(f, "{uuid}")?;
                prev = Some(uuid);
            }
            if let Some(tag) = tag {
                write!(f, ":{tag}")?;
            }
            for iv in ivs {
                write!(f, ":{iv}")?;
            }
        }
        Ok(())
    }
}

fn ivs_contain(ivs: &[GtidInterval], seq: u64) -> bool {
    let i = ivs.partition_point(|iv| iv.end < seq);
    ivs.get(i).is_some_and(|iv| iv.start <= seq)
}

/// Merges a start-sorted list into the canonical (coalesced) form.
fn coalesce(sorted: Vec<GtidInterval>) -> Vec<GtidInterval> {
    let mut out: Vec<GtidInterval> = Vec::with_capacity(sorted.len());
    for iv in sorted {
        match out.last_mut() {
            Some(last) if iv.start <= last.end.saturating_add(1) => last.end = last.end.max(iv.end),
            _ => out.push(iv),
        }
    }
    out
}

/// `a \ b` for canonical lists.
fn subtract_ivs(a: &[GtidInterval], b: &[GtidInterval]) -> Vec<GtidInterval> {
    let mut out = Vec::new();
    let mut j = 0;
    for iv in a {
        let mut start = iv.start;
        // Skip ranges of `b` that end before this one starts (they cannot affect later ones).
        while j < b.len() && b[j].end < start {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].start <= iv.end {
            if b[k].start > start {
                out.push(GtidInterval {
                    start,
                    end: b[k].start - 1,
                });
            }
            if b[k].end >= iv.end {
                start = iv.end + 1; // fully covered from here on
                break;
            }
            start = b[k].end + 1;
            k += 1;
        }
        if start <= iv.end {
            out.push(GtidInterval { start, end: iv.end });
        }
    }
    out
}

impl fmt::Display for MysqlGtidSet {
    /// Exactly as `SELECT @@GLOBAL.gtid_executed` prints it (uuid groups joined by `",\n"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, ",\n")
    }
}

impl FromStr for MysqlGtidSet {
    type Err = GtidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = MysqlGtidSet::new();
        let mut c = Cursor::new("GTID set", s);
        c.skip_ws();
        loop {
            while c.eat(b',') {
                c.skip_ws();
            }
            if c.peek().is_none() {
                return Ok(set);
            }
            let uuid = c.uuid()?;
            c.skip_ws();
            let mut tag = None;
            while c.eat(b':') {
                c.skip_ws();
                match c.peek() {
                    Some(b) if is_tag_start(b) => tag = Some(c.tag()?),
                    Some(b) if b.is_ascii_digit() => {
                        let start = c.mysql_seq()?;
                        c.skip_ws();
                        let end = if c.eat(b'-') {
                            c.skip_ws();
                            let end = c.mysql_seq()?;
                            if end < start {
                                return Err(c.err("interval end is below its start"));
                            }
                            end
                        } else {
                            start
                        };
                        set.insert_interval(uuid, tag.clone(), GtidInterval { start, end });
                    }
                    _ => return Err(c.err("expected sequence number or tag")),
                }
                c.skip_ws();
            }
            if c.peek().is_some_and(|b| b != b',') {
                return Err(c.err("expected ':', ',' or end of input"));
            }
        }
    }
}

/// A MariaDB GTID position: the last `seq` per `(domain, server)`; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MariadbGtidSet {
    last: BTreeMap<(u32, u32), u64>,
}

impl MariadbGtidSet {
    /// The empty position.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no GTID is recorded.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// `(domain, server, seq)` sorted by domain then server.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
        self.last.iter().map(|(&(d, s), &n)| (d, s, n))
    }

    /// Largest `seq` recorded for `domain`, over all servers.
    pub fn domain_seq(&self, domain: u32) -> Option<u64> {
        self.last
            .range((domain, 0)..=(domain, u32::MAX))
            .map(|(_, &n)| n)
            .max()
    }

    /// Records `gtid` as the last of its `(domain, server)` (keeping the larger `seq`);
    /// returns whether the position moved. Errors on a MySQL GTID.
    pub fn insert(&mut self, gtid: &Gtid) -> Result<bool, GtidError> {
        let Gtid::Mariadb {
            domain,
            server,
            seq,
        } = *gtid
        else {
            return Err(GtidError::FlavourMismatch {
                gtid: gtid.to_string(),
                set_flavour: "MariaDB",
            });
        };
        match self.last.entry((domain, server)) {
            Entry::Vacant(e) => {
                e.insert(seq);
                Ok(true)
            }
            Entry::Occupied(mut e) if *e.get() < seq => {
                e.insert(seq);
                Ok(true)
            }
            Entry::Occupied(_) => Ok(false),
        }
    }

    /// True when `gtid` is MariaDB's `d-s-n` and the largest `seq` of domain `d` is `>= n`.
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match *gtid {
            Gtid::Mariadb { domain, seq, .. } => self.domain_seq(domain).is_some_and(|n| n >= seq),
            Gtid::Mysql { .. } => false,
        }
    }
}

impl fmt::Display for MariadbGtidSet {
    /// `0-1-100,1-2-5`, sorted by domain then server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, s, n)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

impl FromStr for MariadbGtidSet {
    type Err = GtidError;

    /// `d-s-n` items joined by `,` with optional whitespace; `""` is the empty position.
    /// A repeated `(domain, server)` is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = MariadbGtidSet::new();
        let mut c = Cursor::new("MariaDB GTID set", s);
        c.skip_ws();
        if c.peek().is_none() {
            return Ok(set);
        }
        loop {
            let (d, srv, n) = c.mariadb_triple()?;
            if set.last.insert((d, srv), n).is_some() {
                return Err(c.err("repeated domain-server pair"));
            }
            c.skip_ws();
            if c.peek().is_none() {
                return Ok(set);
            }
            c.expect(b',', "expected ',' or end of input")?;
            c.skip_ws();
        }
    }
}

/// A GTID set of either flavour. Caveat: an empty MariaDB set prints as `""`, which reads
/// back as an empty MySQL set; keep the flavour beside it where that matters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GtidSet {
    Mysql(MysqlGtidSet),
    Mariadb(MariadbGtidSet),
}

impl GtidSet {
    /// The empty MySQL set.
    pub fn empty_mysql() -> Self {
        GtidSet::Mysql(MysqlGtidSet::new())
    }

    /// The empty MariaDB position.
    pub fn empty_mariadb() -> Self {
        GtidSet::Mariadb(MariadbGtidSet::new())
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::Mysql(s) => s.is_empty(),
            GtidSet::Mariadb(s) => s.is_empty(),
        }
    }

    /// Flavour-aware membership; a GTID of the other flavour is never contained.
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match self {
            GtidSet::Mysql(s) => s.contains(gtid),
            GtidSet::Mariadb(s) => s.contains(gtid),
        }
    }

    /// Adds `gtid`; errors if its flavour differs from the set's. An empty set takes the
    /// flavour of the first GTID (an empty set's text form does not say its flavour).
    pub fn insert(&mut self, gtid: &Gtid) -> Result<bool, GtidError> {
        if self.is_empty() {
            *self = match gtid {
                Gtid::Mysql { .. } => GtidSet::empty_mysql(),
                Gtid::Mariadb { .. } => GtidSet::empty_mariadb(),
            };
        }
        match self {
            GtidSet::Mysql(s) => s.insert(gtid),
            GtidSet::Mariadb(s) => s.insert(gtid),
        }
    }

    /// Whether every transaction of `self` is in `other` (MariaDB: per domain, `self`'s
    /// sequence number is at or below `other`'s). The empty set is a subset of anything;
    /// sets of different flavours are otherwise unrelated.
    pub fn is_subset(&self, other: &GtidSet) -> bool {
        match (self, other) {
            _ if self.is_empty() => true,
            (GtidSet::Mysql(a), GtidSet::Mysql(b)) => a.is_subset(b),
            (GtidSet::Mariadb(a), GtidSet::Mariadb(b)) => a
                .iter()
                .all(|(domain, _, seq)| b.domain_seq(domain).is_some_and(|s| s >= seq)),
            _ => false,
        }
    }

    /// Single-line form (MySQL uuid groups joined by `","`); the serde form.
    pub fn to_compact_string(&self) -> String {
        match self {
            GtidSet::Mysql(s) => s.to_compact_string(),
            GtidSet::Mariadb(s) => s.to_string(),
        }
    }
}

impl fmt::Display for GtidSet {
    /// As the server prints it (MySQL: `",\n"` between uuids).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::Mysql(s) => s.fmt(f),
            GtidSet::Mariadb(s) => s.fmt(f),
        }
    }
}

impl FromStr for GtidSet {
    type Err = GtidError;

    /// MariaDB when the first item is `digits-digits-digits`, else MySQL; `""` is an empty MySQL set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let first = s.split(',').map(str::trim).find(|item| !item.is_empty());
        let is_mariadb = first.is_some_and(|item| {
            item.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                && item.bytes().filter(|&b| b == b'-').count() == 2
        });
        if is_mariadb {
            s.parse().map(GtidSet::Mariadb)
        } else {
            s.parse().map(GtidSet::Mysql)
        }
    }
}

/// Serialize as a string (`$to_string`), deserialize through `FromStr`.
macro_rules! string_serde {
    ($ty:ty, $to_string:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let to_string: fn(&$ty) -> String = $to_string;
                serializer.serialize_str(&to_string(self))
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(Tag, |t| t.0.clone());
string_serde!(Gtid, |g| g.to_string());
string_serde!(MysqlGtidSet, |s| s.to_compact_string());
string_serde!(MariadbGtidSet, |s| s.to_string());
string_serde!(GtidSet, |s| s.to_compact_string());

fn is_tag_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// A byte cursor over ASCII syntax; it only ever advances over ASCII bytes, so `pos` is
/// always a char boundary.
struct Cursor<'a> {
    what: &'static str,
    input: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(what: &'static str, input: &'a str) -> Self {
        Self {
            what,
            input,
            pos: 0,
        }
    }

    fn err(&self, reason: &'static str) -> GtidError {
        GtidError::Parse {
            what: self.what,
            input: clip(self.input),
            at: clip(&self.input[self.pos..]),
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), GtidError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn end(&self) -> Result<(), GtidError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("expected end of input")),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    /// A 36-character hyphenated uuid, any case.
    fn uuid(&mut self) -> Result<Uuid, GtidError> {
        let bytes = self.input.as_bytes().get(self.pos..self.pos + 36);
        match bytes.map(Uuid::try_parse_ascii) {
            Some(Ok(uuid)) => {
                self.pos += 36;
                Ok(uuid)
            }
            _ => Err(self.err("expected uuid")),
        }
    }

    fn tag(&mut self) -> Result<Tag, GtidError> {
        if !self.peek().is_some_and(is_tag_start) {
            return Err(self.err("expected tag [a-z_][a-z0-9_]{0,31}"));
        }
        let start = self.pos;
        let text = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        if text.len() > MAX_TAG_LEN {
            self.pos = start;
            return Err(self.err("tag longer than 32 characters"));
        }
        Ok(Tag(text.to_ascii_lowercase()))
    }

    fn number(&mut self, reason: &'static str) -> Result<u64, GtidError> {
        let start = self.pos;
        let digits = self.take_while(|b| b.is_ascii_digit());
        match digits.parse() {
            Ok(n) => Ok(n),
            Err(_) => {
                self.pos = start;
                Err(self.err(reason))
            }
        }
    }

    fn mysql_seq(&mut self) -> Result<u64, GtidError> {
        let start = self.pos;
        let n = self.number("expected sequence number")?;
        if n == 0 || n > MAX_MYSQL_SEQ {
            self.pos = start;
            return Err(self.err("sequence number out of range 1..=9223372036854775806"));
        }
        Ok(n)
    }

    fn mariadb_triple(&mut self) -> Result<(u32, u32, u64), GtidError> {
        let domain = self.u32("expected domain id (u32)")?;
        self.expect(b'-', "expected '-' after domain id")?;
        let server = self.u32("expected server id (u32)")?;
        self.expect(b'-', "expected '-' after server id")?;
        let seq = self.number("expected sequence number (u64)")?;
        Ok((domain, server, seq))
    }

    fn u32(&mut self, reason: &'static str) -> Result<u32, GtidError> {
        let start = self.pos;
        let n = self.number(reason)?;
        u32::try_from(n).map_err(|_| {
            self.pos = start;
            self.err(reason)
        })
    }
}

#[cfg(test)]
mod tests;
