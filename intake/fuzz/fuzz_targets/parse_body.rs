//! Fuzzes the intake's body decoder, parser and validator exactly as `POST /v1/events` calls
//! them, and checks their invariants on every input.
#![no_main]

use beacon_intake::body::{decode, parse, Format, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let format = match ctl % 3 {
        0 => Format::Json,
        1 => Format::Ndjson,
        _ => Format::Sniff,
    };
    let gzip = ctl & 0x80 != 0;
    let limits = Limits {
        max_items: 64,
        max_item_bytes: 4096,
    };
    let Ok(decoded) = decode(body, gzip, 1 << 20) else {
        return;
    };
    assert!(decoded.len() <= 1 << 20);
    let Ok(parsed) = parse(&decoded, format, &limits) else {
        return;
    };
    assert!(parsed.total() <= limits.max_items);
    let mut seen = vec![false; parsed.total()];
    for v in &parsed.valid {
        assert!(
            !std::mem::replace(&mut seen[v.index], true),
            "index used twice"
        );
        assert!(v.json.len() <= limits.max_item_bytes);
        // The canonical encoding is valid JSON and a fixed point of validation.
        let again = beacon::schema::validate_str(&v.json, limits.max_item_bytes)
            .expect("canonical item re-validates");
        assert_eq!(again, v.json);
        let obj: serde_json::Value = serde_json::from_str(&v.json).unwrap();
        assert_eq!(obj["event_id"].as_str(), Some(v.event_id.as_str()));
        assert_eq!(obj["event_time"].as_str(), Some(v.event_time.as_str()));
        assert_eq!(obj["event_type"].as_str(), Some(v.event_type.as_str()));
    }
    for r in &parsed.rejected {
        assert!(
            !std::mem::replace(&mut seen[r.index], true),
            "index used twice"
        );
        assert!(!r.error.is_empty());
    }
    assert!(seen.iter().all(|s| *s), "every index answered");
});
