//! The `fw_env.config` reader on arbitrary text.
//!
//! A parse never panics; one that succeeds holds one or two copies that obey the rules the
//! reader checks (sizes in range, copies fit their sectors, a redundant pair of one size that
//! does not overlap), and the copies, written out again as `fw_env.config` lines, parse back to
//! the same copies. An error names the file and a line of it.
#![no_main]

use fwguard::boot::fw_env::{EnvDevice, FwEnvConfig};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn line_of(d: &EnvDevice) -> String {
    let mut l = format!("{} {:#x} {}", d.device.display(), d.offset, d.size);
    if let Some(s) = d.sector_size {
        l += &format!(" {s:#x}");
    }
    if let Some(n) = d.sectors {
        l += &format!(" {n}");
    }
    l
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/fw_env.config");
    match FwEnvConfig::parse(text, path) {
        Ok(c) => {
            assert_eq!(c.source, path);
            assert!(matches!(c.copies.len(), 1 | 2), "{c:?}");
            for d in &c.copies {
                assert!((8..=64 << 20).contains(&d.size), "{d:?}");
                assert!(d.line >= 1 && d.line <= text.lines().count(), "{d:?}");
                assert!(d.sectors.is_none() || d.sector_size.is_some());
                if let Some(s) = d.sector_size {
                    let span = s as u128 * d.sectors.unwrap_or(1).max(1) as u128;
                    assert!(s > 0 && span >= d.size as u128, "{d:?}");
                }
                let dev = d.device.to_str().expect("the device came from UTF-8 text");
                assert!(
                    !dev.is_empty() && !dev.contains(char::is_whitespace) && !dev.contains('#')
                );
            }
            if let [a, b] = &c.copies[..] {
                assert_eq!(a.size, b.size);
                assert!(a.line < b.line);
                let end = |d: &EnvDevice| d.offset as u128 + d.size as u128;
                assert!(
                    a.device != b.device
                        || end(a) <= b.offset as u128
                        || end(b) <= a.offset as u128,
                    "overlapping copies accepted: {c:?}"
                );
            }
            // Written out again, one line per copy, it reads back the same.
            let again: Vec<String> = c.copies.iter().map(line_of).collect();
            let back = FwEnvConfig::parse(&again.join("\n"), path)
                .unwrap_or_else(|e| panic!("{again:?} does not parse again: {e}"));
            assert_eq!(back.copies.len(), c.copies.len());
            for (i, (x, y)) in back.copies.iter().zip(&c.copies).enumerate() {
                assert_eq!(x.line, i + 1);
                assert_eq!(
                    EnvDevice {
                        line: 0,
                        ..x.clone()
                    },
                    EnvDevice {
                        line: 0,
                        ..y.clone()
                    }
                );
            }
        }
        Err(e) => {
            assert_eq!(e.path, path);
            assert!(e.line <= text.lines().count(), "{e}");
            assert!(!e.problem.is_empty());
        }
    }
});
