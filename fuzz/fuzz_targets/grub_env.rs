//! The GRUB environment block parser on arbitrary bytes.
//!
//! Each input is decoded as a block as it is, and with the block signature put in front (so
//! the line parser runs without the fuzzer having to find the signature first). A decode never
//! panics; what it reads encodes into a block of the same size (it came from one), which
//! decodes to the same variables; encoding that again gives the same bytes.
//!
//! The input is also taken as NUL-separated name/value pairs: the pairs `EnvVars::set`
//! accepts, encoded, either decode back to the same variables or are refused by `encode`
//! (never written as a block that reads back differently).
#![no_main]

use fwguard::boot::grub::{decode, encode, GrubEnvError, SIGNATURE};
use fwguard::boot::uboot_env::EnvVars;
use libfuzzer_sys::fuzz_target;

fn check_block(bytes: &[u8]) {
    if let Ok(vars) = decode(bytes) {
        let again = encode(&vars, bytes.len())
            .unwrap_or_else(|e| panic!("what was read does not fit its own block: {e}"));
        assert_eq!(again.len(), bytes.len());
        assert!(again.starts_with(SIGNATURE));
        assert_eq!(
            decode(&again).as_ref(),
            Ok(&vars),
            "{:?}",
            String::from_utf8_lossy(&again)
        );
        assert_eq!(encode(&vars, bytes.len()).unwrap(), again);
    }
}

fuzz_target!(|data: &[u8]| {
    check_block(data);
    let mut block = SIGNATURE.to_vec();
    block.extend_from_slice(data);
    check_block(&block);

    if let Ok(text) = std::str::from_utf8(data) {
        let mut vars = EnvVars::default();
        let mut fields = text.split('\0');
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let _ = vars.set(name, value);
        }
        match encode(&vars, 4096) {
            Ok(b) => assert_eq!(
                decode(&b).as_ref(),
                Ok(&vars),
                "{:?}",
                String::from_utf8_lossy(&b)
            ),
            Err(GrubEnvError::TooBig { need, size }) => assert!(need > size),
            Err(_) => {}
        }
    }
});
