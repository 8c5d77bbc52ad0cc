//! Crash points for tests. With the `failpoints` feature, `hit(name)` kills the process with
//! SIGKILL (as a power cut or `kill -9` would) when `FWGUARD_FAILPOINT` names that point.
//! Without the feature it compiles to nothing.

/// Every failpoint, in the order an update passes them.
pub const ALL: &[&str] = &[
    "install-begun",
    "install-part-written",
    "install-mid-write",
    "install-checkpoint",
    "install-written",
    "install-verified",
    "arm-persisted",
    "settings-mounted",
    "settings-carried",
    "arm-env-written",
    "trial-health-round",
    "commit-env-written",
    "archive-copied",
    "rollback-persisted",
    "rollback-env-written",
];

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    debug_assert!(ALL.contains(&name), "unknown failpoint {name}");
    if std::env::var("FWGUARD_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("fwguard: failpoint {name}: killing the process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
