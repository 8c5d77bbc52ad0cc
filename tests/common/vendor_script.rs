//! A vendor boot command in Python for the `script` backend: its state in a JSON file next
//! to it; `mode` says how it misbehaves (ok, fails, garbage, ignores, chatty: 1 MiB on
//! stderr first, forks: leaves a `sleep 60` holding its stdout and stderr).

use fwguard::boot::script::ScriptBoot;
use std::path::Path;

/// A vendor command in Python: state in a JSON file next to it; `mode` changes how it
/// misbehaves.
pub fn vendor_script(dir: &Path, mode: &str) -> ScriptBoot {
    let state = dir.join("state.json");
    std::fs::write(
        &state,
        r#"{"active": "A", "next": "A", "trial": false, "bootcount": 0}"#,
    )
    .unwrap();
    let script = dir.join("vendor-boot");
    std::fs::write(
        &script,
        format!(
            r#"import json, subprocess, sys
state_path, mode = {state:?}, {mode:?}
s = json.load(open(state_path))
cmd = sys.argv[1]
if mode == "chatty":
    sys.stderr.write("x" * (1 << 20))
    sys.stderr.flush()
if mode == "forks":
    subprocess.Popen(["sleep", "60"])
if mode == "fails":
    sys.exit("flash is locked")
if cmd == "get-active":
    print("not json" if mode == "garbage" else json.dumps(s))
elif cmd == "set-next" and mode != "ignores":
    s["next"], s["trial"], s["bootcount"] = sys.argv[2], "--trial" in sys.argv, 0
elif cmd == "commit":
    s["next"], s["trial"], s["bootcount"] = sys.argv[2], False, 0
json.dump(s, open(state_path, "w"))
"#
        ),
    )
    .unwrap();
    ScriptBoot::new(vec!["python3".into(), script.display().to_string()])
}
