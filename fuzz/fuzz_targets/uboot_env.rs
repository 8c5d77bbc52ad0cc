//! The U-Boot environment decoder on arbitrary bytes, in both layouts (single, redundant).
//!
//! Each input is decoded as it is (nearly always a bad CRC) and with its CRC put right, so the
//! parser of the `name=value\0` area runs on fuzzed contents. A decode never panics; what it
//! reads encodes into an area of the same size (it came from one), and that decodes to the same
//! variables and flags byte.
#![no_main]

use fwguard::boot::uboot_env::{decode, encode, EnvFormatError, Layout};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8], layout: Layout) {
    match decode(bytes, layout) {
        Ok(copy) => {
            assert_eq!(copy.flags.is_some(), layout == Layout::Redundant);
            for pad in [0x00, 0xff] {
                let again = encode(
                    &copy.vars,
                    layout,
                    copy.flags.unwrap_or(0),
                    bytes.len(),
                    pad,
                )
                .unwrap_or_else(|e| panic!("what was read does not fit its own area: {e}"));
                assert_eq!(again.len(), bytes.len());
                assert_eq!(decode(&again, layout), Ok(copy.clone()));
            }
        }
        Err(EnvFormatError::TooSmall { size, min }) => assert!(size < min && size == bytes.len()),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    for (layout, header) in [(Layout::Single, 4), (Layout::Redundant, 5)] {
        check(data, layout);
        if data.len() >= header {
            let mut fixed = data.to_vec();
            let crc = crc32fast::hash(&fixed[header..]);
            fixed[0..4].copy_from_slice(&crc.to_le_bytes());
            match decode(&fixed, layout) {
                Err(EnvFormatError::BadCrc { .. }) => panic!("the CRC was put right"),
                _ => check(&fixed, layout),
            }
        }
    }
});
