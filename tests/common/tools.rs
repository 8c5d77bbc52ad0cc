//! Running the real U-Boot tools (installed by tests/run.sh; a missing one fails the test).

use std::process::Command;

/// Run `name args`, require success, return its stdout.
pub fn tool(name: &str, args: &[&str]) -> String {
    let o = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is not runnable ({e}); tests/run.sh installs it"));
    assert!(
        o.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
