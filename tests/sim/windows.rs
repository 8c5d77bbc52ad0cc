//! Maintenance windows with a controllable clock: outside the window the daemon (policy
//! auto) writes and verifies the update but does not reboot into it; inside, it does; a clock
//! behind the newest trusted time (no RTC, before NTP) is never inside a window.

use super::common;

use common::{run_daemon_for, world, FAST_TRIAL};
use fwguard::agent::DaemonExit;
use fwguard::state::{PersistedState, UpdateState};
use std::sync::Arc;

#[tokio::test]
async fn the_daemon_reboots_into_an_update_only_inside_the_window() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let now = fwguard::time::unix_now();
    // A daily window two to three hours from now, in a zone 5 h west of UTC.
    let local = (now as i64 - 5 * 3600).rem_euclid(86_400) / 60;
    let hm = |m: i64| {
        format!(
            "{:02}:{:02}",
            m.rem_euclid(1440) / 60,
            m.rem_euclid(1440) % 60
        )
    };
    let extra = format!(
        "policy = \"auto\"\ntimezone = \"EST5\"\ncheck_jitter = \"0s\"\n\n[[maintenance]]\nfrom = \"{}\"\nto = \"{}\"\n",
        hm(local + 120),
        hm(local + 180)
    );
    t.world.write_config(&extra, FAST_TRIAL).unwrap();
    let at = |unix: u64| t.agent().with_clock(Arc::new(move || unix));

    // Outside: staged (written and verified), no reboot.
    assert!(!at(now).in_maintenance_window());
    let staged = |s: &PersistedState| matches!(s.update, UpdateState::Staged { .. });
    assert_eq!(
        t.run_daemon_past(at(now), staged).await,
        DaemonExit::Stopped
    );
    assert!(
        matches!(t.state().update, UpdateState::Staged { .. }),
        "{:?}",
        t.state().update
    );
    assert!(!t.world.router.reboot_requested());

    // A clock far behind the trusted time is never inside, whatever it says.
    let inside = now + 150 * 60;
    assert!(at(inside).in_maintenance_window());
    assert!(!at(inside - 1000 * 86_400).in_maintenance_window());

    // Inside: the staged image boots on trial.
    assert_eq!(
        run_daemon_for(at(inside), 20_000).await,
        DaemonExit::Reboot("trial boot of 1.1 in slot B".into())
    );
    let r = t.power_cycle().await;
    assert_eq!(r.version.as_str(), "1.1");
}

#[test]
fn bad_windows_and_zones_are_named() {
    let example = include_str!("../../packaging/config.toml");
    let parse = |extra: &str| {
        fwguard::config::Settings::parse(
            std::path::Path::new("/etc/fwguard/config.toml"),
            &format!("{example}\n{extra}"),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    for (extra, want) in [
        ("[[maintenance]]\nfrom = \"2:00\"\nto = \"04:00\"", "maintenance[0].from"),
        ("[[maintenance]]\nfrom = \"02:00\"\nto = \"02:00\"", "the window is empty"),
        ("[[maintenance]]\ndays = [\"sunday\"]\nfrom = \"02:00\"\nto = \"04:00\"", "\"sunday\" is not one of"),
        ("[[maintenance]]\nfrom = \"02:00\"\nto = \"04:00\"\n[[maintenance]]\nfrom = \"22:00\"\nto = \"25:00\"", "maintenance[1].to"),
        ("[[maintenance]]\nfrom = \"02:00\"\nuntil = \"04:00\"", "key `maintenance[0]`: unknown field `until`"),
        ("[[maintenance]]\nfrom = \"02:00\"", "key `maintenance[0]`: missing field `to`"),
        ("[[reboot_window]]\nfrom = \"02:00\"\nto = 4", "key `reboot_window[0]`: invalid type: integer `4`"),
        ("[[reboot_window]]\nfrom = \"03:00\"\nto = \"03:00\"", "reboot_window[0].to"),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    parse("[[maintenance]]\ndays = [\"sat\", \"sun\"]\nfrom = \"23:00\"\nto = \"05:00\"").unwrap();
    let agent = |line: &str| {
        let text = example.replace(
            "policy = \"auto\"\n",
            &format!("policy = \"approve\"\n{line}\n"),
        );
        assert_ne!(text, example);
        fwguard::config::Settings::parse(std::path::Path::new("/etc/fwguard/config.toml"), &text)
            .map_err(|e| e.to_string())
    };
    let e = agent("approve_after = \"soon\"").unwrap_err();
    assert!(
        e.contains("key `agent.approve_after`: \"soon\" is not a duration"),
        "{e}"
    );
    let e = agent("approve_after = \"0s\"").unwrap_err();
    assert!(e.contains("must be greater than zero"), "{e}");
    let s = agent("approve_after = \"72h\"").unwrap();
    assert_eq!(
        s.approve_after,
        Some(std::time::Duration::from_secs(72 * 3600))
    );
}
