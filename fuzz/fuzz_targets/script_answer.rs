//! The script bootloader backend's parser of the vendor command's `get-active` answer, on
//! arbitrary text.
//!
//! A parse never panics; an answer it accepts, written out again as the protocol's JSON
//! object, parses back to the same answer, and so does the text with whitespace around it.
#![no_main]

use fwguard::boot::script::{parse_answer, Answer};
use fwguard::slot::Slot;
use libfuzzer_sys::fuzz_target;

fn json(a: &Answer) -> String {
    let slot = |s: Slot| format!("\"{s}\"");
    format!(
        r#"{{"active": {}, "next": {}, "trial": {}, "bootcount": {}, "bootlimit": {}, "fell_back_from": {}}}"#,
        slot(a.active),
        slot(a.next),
        a.trial,
        a.bootcount,
        a.bootlimit,
        a.fell_back_from.map_or("null".to_string(), slot)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = parse_answer(text) {
        let again = json(&a);
        assert_eq!(parse_answer(&again).ok().as_ref(), Some(&a), "{again}");
        assert_eq!(
            parse_answer(&format!("\n {text} \n")).ok().as_ref(),
            Some(&a)
        );
    }
});
