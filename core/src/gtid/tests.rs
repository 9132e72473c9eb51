use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn mysql(s: &str) -> MysqlGtidSet {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

/// Strings in the exact form servers print; each must parse and print back identically.
/// MySQL ones are shaped after the 8.4 manual's examples (replication-gtids-concepts.html),
/// lowercased and joined by ",\n" as `@@gtid_executed` prints them.
const MYSQL_GOLDEN: &[&str] = &[
    "",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3:11:47-49",
    "2174b383-5441-11e8-b90a-c80aa9429562:1-3,\n24da1670-0c0c-11e8-8442-00059a3c7b00:1-19",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:domain_1:1-3:11:47-49",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:domain_1:1-3:15-21:domain_2:8-52",
    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10:domain_1:31-35:40-43:47-48:domain_2:36-39:44-46",
    "2174b383-5441-11e8-b90a-c80aa9429562:1-3:_t:9,\n\
     3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9223372036854775806,\n\
     ed102faf-eb00-11eb-8f20-0c5415bfaa1d:domain_1:117",
];

const MARIADB_GOLDEN: &[&str] = &[
    "",
    "0-1-100",
    "0-1-100,1-2-5",
    "0-1-7,0-2-9,4294967295-4294967295-18446744073709551615",
];

#[test]
fn golden_mysql_sets_round_trip_exactly() {
    for &text in MYSQL_GOLDEN {
        let set = mysql(text);
        assert_eq!(set.to_string(), text);
        let compact = text.replace(",\n", ",");
        assert_eq!(set.to_compact_string(), compact);
        assert_eq!(mysql(&compact), set);
        assert_eq!(
            text.parse::<GtidSet>().unwrap(),
            GtidSet::Mysql(set.clone())
        );
        let json = serde_json::to_string(&GtidSet::Mysql(set.clone())).unwrap();
        assert_eq!(json, serde_json::to_string(&compact).unwrap());
        assert_eq!(
            serde_json::from_str::<GtidSet>(&json).unwrap(),
            GtidSet::Mysql(set)
        );
    }
}

#[test]
fn golden_mariadb_sets_round_trip_exactly() {
    for &text in MARIADB_GOLDEN {
        let set: MariadbGtidSet = text.parse().unwrap();
        assert_eq!(set.to_string(), text);
        if !text.is_empty() {
            let any: GtidSet = text.parse().unwrap();
            assert_eq!(any, GtidSet::Mariadb(set.clone()));
            let json = serde_json::to_string(&any).unwrap();
            assert_eq!(serde_json::from_str::<GtidSet>(&json).unwrap(), any);
        }
    }
}

#[test]
fn parse_normalizes_what_the_server_accepts() {
    let cases = [
        // Uppercase uuid and mixed-case tags, as in the manual; spaces after ':'.
        (
            "3E11FA47-71CA-11E1-9E33-C80AA9429562: Domain_1:1-3:15-21: Domain_2:8-52",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:domain_1:1-3:15-21:domain_2:8-52",
        ),
        // The manual's comma-space form, unsorted uuids.
        (
            "24DA1670-0C0C-11E8-8442-00059A3C7B00:1-19, 2174B383-5441-11E8-B90A-C80AA9429562:1-3",
            "2174b383-5441-11e8-b90a-c80aa9429562:1-3,\n24da1670-0c0c-11e8-8442-00059a3c7b00:1-19",
        ),
        // Unsorted, overlapping, touching; `n-n`; repeated uuid; empty items; newlines.
        (
            " 3e11fa47-71ca-11e1-9e33-c80aa9429562:9-9:5-7:1-3:4 ,,\n\
             3e11fa47-71ca-11e1-9e33-c80aa9429562 : 2 - 6 ,",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7:9",
        ),
        // Tagged part first in the input, untagged printed first; uuid with no intervals.
        (
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:t:5:T:6,3e11fa47-71ca-11e1-9e33-c80aa9429562:1,\
             ed102faf-eb00-11eb-8f20-0c5415bfaa1d,ed102faf-eb00-11eb-8f20-0c5415bfaa1d:x",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1:t:5-6",
        ),
        (" \n ,", ""),
    ];
    for (input, printed) in cases {
        assert_eq!(mysql(input).to_string(), printed, "{input:?}");
    }
}

#[test]
fn half_open_is_what_mysql_common_gno_interval_new_takes() {
    // mysql_common's `GnoInterval::new(start, end)` is half-open [start, end): MySQL's
    // inclusive `1-5` is GnoInterval::new(1, 6) and the single `7` is GnoInterval::new(7, 8).
    let set = mysql(&format!(
        "{U1}:1-5:7:tg:9223372036854775806,ed102faf-eb00-11eb-8f20-0c5415bfaa1d:3"
    ));
    assert_eq!(
        set.to_half_open(),
        vec![
            HalfOpenSid {
                uuid: *uuid(U1).as_bytes(),
                tag: None,
                intervals: vec![(1, 6), (7, 8)],
            },
            HalfOpenSid {
                uuid: *uuid(U1).as_bytes(),
                tag: Some(Tag::new("tg").unwrap()),
                intervals: vec![(MAX_MYSQL_SEQ, MAX_MYSQL_SEQ + 1)],
            },
            HalfOpenSid {
                uuid: *uuid("ed102faf-eb00-11eb-8f20-0c5415bfaa1d").as_bytes(),
                tag: None,
                intervals: vec![(3, 4)],
            },
        ]
    );
    assert!(MysqlGtidSet::new().to_half_open().is_empty());
}

#[test]
fn errors_say_what_and_where() {
    let err = "xyz".parse::<MysqlGtidSet>().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid GTID set "xyz" at "xyz": expected uuid"#
    );
    let err = format!("{U1}:1-5:0").parse::<MysqlGtidSet>().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            r#"invalid GTID set "{U1}:1-5:0" at "0": sequence number out of range 1..=9223372036854775806"#
        )
    );
    let cases = [
        (format!("{U1}:5-3"), "interval end is below its start"),
        (
            format!("{U1}:9223372036854775807"),
            "sequence number out of range",
        ),
        (
            format!("{U1}:99999999999999999999"),
            "expected sequence number",
        ),
        (format!("{U1}:"), "expected sequence number or tag"),
        (format!("{U1}:1;"), "expected ':', ',' or end of input"),
        (format!("{U1}:{}:1", "a".repeat(33)), "tag longer than 32"),
        (format!("{U1}:1-"), "expected sequence number"),
        (
            "3e11fa47-71ca-11e1-9e33-c80aa942956:1".to_owned(),
            "expected uuid",
        ),
        (
            "3e11fa4771ca11e19e33c80aa94295620000:1".to_owned(),
            "expected uuid",
        ),
    ];
    for (input, reason) in cases {
        let err = input.parse::<MysqlGtidSet>().unwrap_err().to_string();
        assert!(err.contains(reason), "{input:?}: {err}");
    }
    let err = "0-1-2,0-1-3".parse::<MariadbGtidSet>().unwrap_err();
    assert!(
        err.to_string().contains("repeated domain-server pair"),
        "{err}"
    );
    for bad in ["0-1", "0-1-2,", "4294967296-1-2", "0-1-x", "0-1-2 3"] {
        assert!(bad.parse::<MariadbGtidSet>().is_err(), "{bad:?}");
    }
    // Long inputs are quoted, not dumped.
    let long = "z".repeat(10_000);
    let msg = long.parse::<MysqlGtidSet>().unwrap_err().to_string();
    assert!(msg.len() < 500, "{}", msg.len());
}

#[test]
fn tags_follow_mysql_syntax() {
    assert_eq!(Tag::new("Domain_1").unwrap().as_str(), "domain_1");
    assert_eq!(Tag::new("_").unwrap().as_str(), "_");
    assert!(Tag::new(&"a".repeat(32)).is_ok());
    for bad in ["", "1a", "a-b", " a", "a ", &"a".repeat(33), "é"] {
        assert!(Tag::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn single_gtids_parse_and_print() {
    let cases = [
        (format!("{U1}:23"), format!("{U1}:23")),
        (
            "ED102FAF-EB00-11EB-8F20-0C5415BFAA1D:Domain_1:117".to_owned(),
            "ed102faf-eb00-11eb-8f20-0c5415bfaa1d:domain_1:117".to_owned(),
        ),
        ("0-1-100".to_owned(), "0-1-100".to_owned()),
    ];
    for (input, printed) in cases {
        let gtid: Gtid = input.parse().unwrap();
        assert_eq!(gtid.to_string(), printed);
        let json = serde_json::to_string(&gtid).unwrap();
        assert_eq!(serde_json::from_str::<Gtid>(&json).unwrap(), gtid);
    }
    for bad in [
        format!("{U1}:0"),
        U1.to_owned(),
        format!("{U1}:t"),
        format!("{U1}:1-2"),
        "0-1".into(),
    ] {
        assert!(bad.parse::<Gtid>().is_err(), "{bad:?}");
    }
}

#[test]
fn flavour_detection_and_empty_sets() {
    assert_eq!("".parse::<GtidSet>().unwrap(), GtidSet::empty_mysql());
    assert_eq!(" \n".parse::<GtidSet>().unwrap(), GtidSet::empty_mysql());
    assert!(GtidSet::empty_mariadb().is_empty());
    assert_eq!(GtidSet::empty_mariadb().to_string(), "");
    assert!(matches!(
        " 0-1-100 , 1-2-5".parse::<GtidSet>().unwrap(),
        GtidSet::Mariadb(_)
    ));
    // A uuid whose first group is all digits is still MySQL.
    assert!(matches!(
        "12345678-1234-1234-1234-123456789012:1"
            .parse::<GtidSet>()
            .unwrap(),
        GtidSet::Mysql(_)
    ));
}

#[test]
fn set_operations_by_example() {
    let purged = mysql(&format!("{U1}:1-100"));
    let captured = mysql(&format!("{U1}:50-200"));
    assert_eq!(captured.missing(&purged).to_string(), format!("{U1}:1-49"));
    assert!(purged.missing(&captured).to_string().ends_with(":101-200"));
    assert_eq!(
        mysql(&format!("{U1}:1-10:20-30")).subtract(&mysql(&format!("{U1}:3:5-22:30"))),
        mysql(&format!("{U1}:1-2:4:23-29"))
    );
    assert!(mysql(&format!("{U1}:3-4:7")).is_subset(&mysql(&format!("{U1}:1-5:7-9"))));
    assert!(!mysql(&format!("{U1}:3-6")).is_subset(&mysql(&format!("{U1}:1-5:7-9"))));
    assert!(!mysql(&format!("{U1}:t:3")).is_subset(&mysql(&format!("{U1}:1-5"))));
    let big = mysql(&format!(
        "{U1}:1-9223372036854775806,ed102faf-eb00-11eb-8f20-0c5415bfaa1d:1-9223372036854775806:t:1-9223372036854775806"
    ));
    assert_eq!(big.count(), 3 * u128::from(MAX_MYSQL_SEQ));

    let mut set = MysqlGtidSet::new();
    let g = |seq| Gtid::Mysql {
        uuid: uuid(U1),
        tag: None,
        seq,
    };
    assert!(set.insert(&g(2)).unwrap());
    assert!(!set.insert(&g(2)).unwrap());
    assert!(set.insert(&g(1)).unwrap());
    assert!(set.insert(&g(3)).unwrap());
    assert_eq!(set.to_string(), format!("{U1}:1-3"));
    assert!(set.insert(&g(0)).is_err());
    assert!(set.insert(&g(u64::MAX)).is_err());
    let maria = Gtid::Mariadb {
        domain: 0,
        server: 1,
        seq: 5,
    };
    assert_eq!(
        set.insert(&maria).unwrap_err().to_string(),
        "cannot add GTID 0-1-5 to a MySQL GTID set"
    );
    assert!(!set.contains(&maria));
    assert!(GtidSet::Mysql(set).insert(&maria).is_err());
    assert!(GtidInterval::new(0, 1).is_err());
    assert!(GtidInterval::new(2, 1).is_err());
    assert!(GtidInterval::new(1, MAX_MYSQL_SEQ + 1).is_err());
}

#[test]
fn mariadb_contains_means_domain_has_passed_seq() {
    let set: MariadbGtidSet = "0-1-100,0-2-90,1-2-5".parse().unwrap();
    let g = |domain, server, seq| Gtid::Mariadb {
        domain,
        server,
        seq,
    };
    assert!(set.contains(&g(0, 1, 100)));
    assert!(set.contains(&g(0, 2, 95))); // domain 0 reached 100 via server 1
    assert!(set.contains(&g(0, 7, 1))); // server does not matter
    assert!(!set.contains(&g(0, 1, 101)));
    assert!(set.contains(&g(1, 2, 5)));
    assert!(!set.contains(&g(2, 1, 1)));
    assert_eq!(set.domain_seq(0), Some(100));
    assert_eq!(set.domain_seq(3), None);

    let mut set = set;
    assert!(!set.insert(&g(0, 1, 50)).unwrap());
    assert!(set.insert(&g(0, 1, 101)).unwrap());
    assert!(set.insert(&g(2, 9, 1)).unwrap());
    assert_eq!(set.to_string(), "0-1-101,0-2-90,1-2-5,2-9-1");
    assert!(
        set.insert(&Gtid::Mysql {
            uuid: uuid(U1),
            tag: None,
            seq: 1
        })
        .is_err()
    );
}

// ---- property tests -------------------------------------------------------------------

const UUIDS: [&str; 3] = [
    "ed102faf-eb00-11eb-8f20-0c5415bfaa1d",
    "2174b383-5441-11e8-b90a-c80aa9429562",
    U1,
];
const TAGS: [Option<&str>; 3] = [None, Some("b"), Some("a_1")];
const MAX_N: u64 = 40;

type Model = BTreeSet<(usize, usize, u64)>;

fn key(u: usize, t: usize) -> (Uuid, Option<Tag>) {
    (uuid(UUIDS[u]), TAGS[t].map(|t| Tag::new(t).unwrap()))
}

fn gtid(u: usize, t: usize, seq: u64) -> Gtid {
    let (uuid, tag) = key(u, t);
    Gtid::Mysql { uuid, tag, seq }
}

/// (uuid index, tag index, start, extra length); length 0 goes through `insert`.
fn ops() -> impl Strategy<Value = Vec<(usize, usize, u64, u64)>> {
    prop::collection::vec((0..3usize, 0..3usize, 1..=MAX_N, 0..6u64), 0..16)
}

fn build(ops: &[(usize, usize, u64, u64)]) -> (MysqlGtidSet, Model) {
    let mut set = MysqlGtidSet::new();
    let mut model = Model::new();
    for &(u, t, start, len) in ops {
        if len == 0 {
            let new = set.insert(&gtid(u, t, start)).unwrap();
            assert_eq!(new, model.insert((u, t, start)));
        } else {
            let (uuid, tag) = key(u, t);
            set.insert_interval(uuid, tag, GtidInterval::new(start, start + len).unwrap());
            model.extend((start..=start + len).map(|n| (u, t, n)));
        }
    }
    (set, model)
}

fn to_model(set: &MysqlGtidSet) -> Model {
    let mut model = Model::new();
    for (uuid, tag, ivs) in set.iter() {
        assert!(!ivs.is_empty(), "empty interval list kept");
        for pair in ivs.windows(2) {
            assert!(
                pair[0].end() + 1 < pair[1].start(),
                "not coalesced: {ivs:?}"
            );
        }
        let u = UUIDS
            .iter()
            .position(|s| *uuid == Uuid::parse_str(s).unwrap())
            .unwrap();
        let t = TAGS
            .iter()
            .position(|s| *s == tag.map(Tag::as_str))
            .unwrap();
        for iv in ivs {
            assert!(iv.start() >= 1 && iv.start() <= iv.end());
            model.extend((iv.start()..=iv.end()).map(|n| (u, t, n)));
        }
    }
    model
}

proptest! {
    #[test]
    fn algebra_agrees_with_a_btreeset_model(a in ops(), b in ops()) {
        let (sa, ma) = build(&a);
        let (sb, mb) = build(&b);
        prop_assert_eq!(to_model(&sa), ma.clone());
        prop_assert_eq!(to_model(&sa.union(&sb)), &ma | &mb);
        prop_assert_eq!(to_model(&sa.subtract(&sb)), &ma - &mb);
        prop_assert_eq!(sa.missing(&sb), sb.subtract(&sa));
        prop_assert_eq!(sa.is_subset(&sb), ma.is_subset(&mb));
        prop_assert!(sa.is_subset(&sa.union(&sb)));
        prop_assert_eq!(sa.count(), ma.len() as u128);
        prop_assert_eq!(sa.is_empty(), ma.is_empty());
        for u in 0..3 {
            for t in 0..3 {
                for n in 1..=MAX_N + 6 {
                    prop_assert_eq!(sa.contains(&gtid(u, t, n)), ma.contains(&(u, t, n)));
                }
            }
        }
        // Half-open form covers exactly the same transactions.
        let half_open: u128 = sa
            .to_half_open()
            .iter()
            .flat_map(|s| s.intervals.iter())
            .map(|&(s, e)| u128::from(e - s))
            .sum();
        prop_assert_eq!(half_open, sa.count());
    }

    #[test]
    fn display_from_str_round_trip(a in ops()) {
        let (set, _) = build(&a);
        prop_assert_eq!(&mysql(&set.to_string()), &set);
        prop_assert_eq!(&mysql(&set.to_compact_string()), &set);
        let any = GtidSet::Mysql(set);
        let json = serde_json::to_string(&any).unwrap();
        prop_assert_eq!(serde_json::from_str::<GtidSet>(&json).unwrap(), any);
    }

    #[test]
    fn mariadb_round_trip_and_contains(
        items in prop::collection::btree_map((0..4u32, 0..4u32), 0..50u64, 0..8),
        probe in (0..5u32, 0..5u32, 0..60u64),
    ) {
        let text = items.iter().map(|((d, s), n)| format!("{d}-{s}-{n}")).collect::<Vec<_>>().join(",");
        let set: MariadbGtidSet = text.parse().unwrap();
        prop_assert_eq!(set.to_string(), text);
        let (d, s, n) = probe;
        let expected = items.iter().filter(|((dd, _), _)| *dd == d).map(|(_, &m)| m).max().is_some_and(|m| m >= n);
        prop_assert_eq!(set.contains(&Gtid::Mariadb { domain: d, server: s, seq: n }), expected);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(s in any::<String>()) {
        check_parsers(&s)?;
    }

    #[test]
    fn parsers_never_panic_on_gtid_like_text(
        prefix in prop::sample::select(vec!["", U1, "3E11FA47-71CA-11E1-9E33-C80AA9429562:", "0-1-"]),
        s in "[0-9a-fA-FxT_:, \n-]{0,60}",
    ) {
        check_parsers(&format!("{prefix}{s}"))?;
    }
}

/// Every parser returns instead of panicking, and whatever parses prints canonically.
fn check_parsers(s: &str) -> Result<(), TestCaseError> {
    if let Ok(set) = s.parse::<MysqlGtidSet>() {
        prop_assert_eq!(mysql(&set.to_string()), set);
    }
    if let Ok(set) = s.parse::<MariadbGtidSet>() {
        prop_assert_eq!(set.to_string().parse::<MariadbGtidSet>().unwrap(), set);
    }
    if let Ok(set) = s.parse::<GtidSet>() {
        prop_assert_eq!(set.to_string().parse::<GtidSet>().unwrap(), set);
    }
    if let Ok(g) = s.parse::<Gtid>() {
        prop_assert_eq!(g.to_string().parse::<Gtid>().unwrap(), g);
    }
    let _ = Tag::new(s);
    Ok(())
}

#[test]
fn flavour_aware_subset() {
    let m = |t: &str| t.parse::<GtidSet>().expect("set");
    let a = m("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5");
    let b = m("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9");
    assert!(a.is_subset(&b) && !b.is_subset(&a));
    let x = m("0-1-5,1-2-7");
    let y = m("0-3-9,1-2-7");
    assert!(x.is_subset(&y) && !y.is_subset(&x) && !x.is_subset(&m("0-1-9")));
    assert!(GtidSet::empty_mysql().is_subset(&y) && !a.is_subset(&y));
}
