//! The `dns` health check's parsing of a DNS response, and its query building, on arbitrary
//! bytes.
//!
//! The input is a response, checked against a fixed query id and against its own id (so the
//! flags, the response code and the answer count are reached). A parse never panics, and its
//! verdict is the one the header gives: an answer count only for a response (QR set), not
//! truncated, with code 0 and at least one answer; a retry over TCP only for a truncated
//! response. The input, taken as a name, builds a query (or is refused) whose question reads
//! back as that name, and which is never taken for an answer.
#![no_main]

use fwguard::health::dns::{answer, query};
use libfuzzer_sys::fuzz_target;

fn check(resp: &[u8], id: u16) {
    let verdict = answer(resp, id);
    let header_ok = resp.len() >= 12 && resp[0..2] == id.to_be_bytes();
    match verdict {
        Ok(n) => {
            assert!(header_ok);
            assert!(resp[2] & 0x80 != 0 && resp[2] & 0x02 == 0 && resp[3] & 0x0f == 0);
            assert!(n > 0 && n == u16::from_be_bytes([resp[6], resp[7]]));
        }
        Err(None) => assert!(header_ok && resp[2] & 0x80 != 0 && resp[2] & 0x02 != 0),
        Err(Some(why)) => {
            assert!(!why.is_empty());
            assert!(
                !header_ok || resp[2] & 0x80 == 0 || resp[3] & 0x0f != 0 || resp[6..8] == [0, 0]
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, 0xbeef);
    if data.len() >= 2 {
        check(data, u16::from_be_bytes([data[0], data[1]]));
    }

    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = query(name, 0x1234) {
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let mut labels = Vec::new();
        let mut at = 12;
        loop {
            let len = q[at] as usize;
            at += 1;
            if len == 0 {
                break;
            }
            assert!(len <= 63);
            labels.push(std::str::from_utf8(&q[at..at + len]).unwrap());
            at += len;
        }
        assert_eq!(&q[at..], &[0, 1, 0, 1], "type A, class IN");
        assert_eq!(labels.join("."), name.trim_end_matches('.'));
        assert_eq!(
            answer(&q, 0x1234),
            Err(Some("DNS response is a query".into()))
        );
    }
});
