//! The OpenWrt .ipk and the Debian package: members, control fields, files and their modes.

use super::common::repo;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// "mode owner path" for every entry of a tar listing (`tar tzvf` / `dpkg-deb -c`).
fn modes(listing: &str) -> Vec<(String, String, String)> {
    listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[5].trim_start_matches('.').to_string(),
            )
        })
        .collect()
}

fn has(entries: &[(String, String, String)], path: &str, mode: &str) {
    let e = entries
        .iter()
        .find(|e| e.2 == path)
        .unwrap_or_else(|| panic!("{path} missing: {entries:?}"));
    assert_eq!(e.0, mode, "{path}");
    assert!(
        e.1 == "root/root" || e.1 == "0/0",
        "{path} is owned by {}",
        e.1
    );
}

#[test]
fn openwrt_ipk() {
    let out = tempfile::tempdir().unwrap();
    let ipk = sh(Command::new("bash")
        .arg(repo("cross/package-ipk.sh"))
        .arg(env!("CARGO_BIN_EXE_fwguard"))
        .arg("arm_cortex-a9_vfpv3-d16")
        .arg(out.path()));
    let ipk = PathBuf::from(ipk.trim());
    assert!(ipk.ends_with(format!(
        "fwguard_{}-1_arm_cortex-a9_vfpv3-d16.ipk",
        version()
    )));
    assert_eq!(
        sh(Command::new("ar").arg("t").arg(&ipk)),
        "debian-binary\ncontrol.tar.gz\ndata.tar.gz\n"
    );
    let x = tempfile::tempdir().unwrap();
    sh(Command::new("ar").arg("x").arg(&ipk).current_dir(x.path()));
    assert_eq!(
        std::fs::read_to_string(x.path().join("debian-binary")).unwrap(),
        "2.0\n"
    );

    let data = modes(&sh(Command::new("tar")
        .arg("tzvf")
        .arg(x.path().join("data.tar.gz"))));
    has(&data, "/usr/sbin/fwguard", "-rwxr-xr-x");
    has(&data, "/etc/init.d/fwguard", "-rwxr-xr-x");
    has(&data, "/etc/fwguard/config.toml", "-rw-r--r--");
    has(&data, "/etc/uci-defaults/90-fwguard", "-rwxr-xr-x");
    has(&data, "/lib/upgrade/keep.d/fwguard", "-rw-r--r--");
    has(&data, "/usr/libexec/rpcd/fwguard", "-rwxr-xr-x");
    has(&data, "/usr/share/rpcd/acl.d/fwguard.json", "-rw-r--r--");

    sh(Command::new("tar")
        .arg("xzf")
        .arg(x.path().join("control.tar.gz"))
        .current_dir(x.path()));
    let control = std::fs::read_to_string(x.path().join("control")).unwrap();
    for field in [
        "Package: fwguard\n".to_string(),
        format!("Version: {}-1\n", version()),
        "Architecture: arm_cortex-a9_vfpv3-d16\n".into(),
        "Depends: libc, ca-bundle\n".into(),
    ] {
        assert!(
            control.contains(&field),
            "{field:?} missing from:\n{control}"
        );
    }
    assert!(control.contains("Installed-Size: "));
    assert_eq!(
        std::fs::read_to_string(x.path().join("conffiles")).unwrap(),
        "/etc/fwguard/config.toml\n"
    );
    let ctl = modes(&sh(Command::new("tar")
        .arg("tzvf")
        .arg(x.path().join("control.tar.gz"))));
    has(&ctl, "/postinst", "-rwxr-xr-x");
    has(&ctl, "/prerm", "-rwxr-xr-x");

    // The init script is a procd service that respawns the daemon.
    let init = std::fs::read_to_string(repo("packaging/openwrt/files/fwguard.init")).unwrap();
    assert!(
        init.contains("USE_PROCD=1")
            && init.contains("procd_set_param respawn")
            && init.contains("daemon")
    );
    // The shipped config is the documented example, and it parses; but its runtime
    // directory is /var/run/fwguard: /run may not exist on OpenWrt (`mkdir -p` would put it
    // on the overlay, on flash), while /var is /tmp there, a tmpfs.
    sh(Command::new("tar")
        .arg("xzf")
        .arg(x.path().join("data.tar.gz"))
        .arg("./etc/fwguard/config.toml")
        .current_dir(x.path()));
    let shipped = x.path().join("etc/fwguard/config.toml");
    let settings = fwguard::config::Settings::load(&shipped).unwrap();
    assert_eq!(settings.runtime_dir, Path::new("/var/run/fwguard"));
    // Its state directory is not on /var (tmpfs there: lost at every reboot).
    assert_eq!(settings.state_dir, Path::new("/etc/fwguard/state"));
    // `sysupgrade -b`, which the linksys profile's settings carry runs, takes what the keep
    // list names: the config, the keys and the state, so the new firmware's fwguard finds them.
    sh(Command::new("tar")
        .arg("xzf")
        .arg(x.path().join("data.tar.gz"))
        .arg("./lib/upgrade/keep.d/fwguard")
        .current_dir(x.path()));
    let keep = std::fs::read_to_string(x.path().join("lib/upgrade/keep.d/fwguard")).unwrap();
    let kept = |p: &Path| keep.lines().any(|k| p.starts_with(k.trim_end_matches('/')));
    assert!(kept(&settings.state_dir) && kept(&shipped_path()), "{keep}");
    let example = std::fs::read_to_string(repo("packaging/config.toml")).unwrap();
    let text = std::fs::read_to_string(&shipped).unwrap();
    let differ: Vec<(&str, &str)> = example
        .lines()
        .zip(text.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        (differ, example.lines().count()),
        (
            vec![
                (
                    "state_dir = \"/var/lib/fwguard\"",
                    "state_dir = \"/etc/fwguard/state\""
                ),
                (
                    "runtime_dir = \"/run/fwguard\"",
                    "runtime_dir = \"/var/run/fwguard\""
                )
            ],
            text.lines().count()
        ),
        "the OpenWrt config differs from the example in more than its state and runtime directories"
    );
    fwguard::config::Settings::load(&repo("packaging/config.toml")).unwrap();
    // The OpenWrt buildroot package installs the same edit.
    let makefile = std::fs::read_to_string(repo("packaging/openwrt/Makefile")).unwrap();
    assert!(makefile.contains("sed -f ./files/config.sed"), "{makefile}");
}

#[test]
fn debian_package() {
    let out = tempfile::tempdir().unwrap();
    let deb = sh(Command::new("bash")
        .arg(repo("cross/package-deb.sh"))
        .arg(env!("CARGO_BIN_EXE_fwguard"))
        .arg("arm64")
        .arg(out.path()));
    let deb = PathBuf::from(deb.trim());
    let entries = modes(&sh(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    has(&entries, "/", "drwxr-xr-x");
    has(&entries, "/usr/sbin/fwguard", "-rwxr-xr-x");
    has(
        &entries,
        "/lib/systemd/system/fwguard.service",
        "-rw-r--r--",
    );
    has(
        &entries,
        "/lib/systemd/system/fwguard-assess.service",
        "-rw-r--r--",
    );
    has(&entries, "/etc/fwguard/config.toml", "-rw-r--r--");
    let fields = sh(Command::new("dpkg-deb").arg("-f").arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
        "Depends",
    ]));
    assert_eq!(
        fields,
        format!(
            "Package: fwguard\nVersion: {}-1\nArchitecture: arm64\nDepends: ca-certificates\n",
            version()
        )
    );
    let x = tempfile::tempdir().unwrap();
    sh(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(x.path()));
    assert_eq!(
        std::fs::read_to_string(x.path().join("conffiles")).unwrap(),
        "/etc/fwguard/config.toml\n"
    );

    // The units: a notify service with a watchdog that restarts on failure, and a oneshot
    // boot assessment ordered before boot-complete.target.
    let svc = std::fs::read_to_string(repo("packaging/systemd/fwguard.service")).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecStart=/usr/sbin/fwguard daemon",
    ] {
        assert!(svc.contains(line), "{line} missing from fwguard.service");
    }
    let assess = std::fs::read_to_string(repo("packaging/systemd/fwguard-assess.service")).unwrap();
    for line in [
        "Type=oneshot",
        "Before=boot-complete.target",
        "RequiredBy=boot-complete.target",
        "ExecStart=/usr/sbin/fwguard assess",
    ] {
        assert!(
            assess.contains(line),
            "{line} missing from fwguard-assess.service"
        );
    }
}

/// Where the package installs its config.
fn shipped_path() -> std::path::PathBuf {
    std::path::PathBuf::from("/etc/fwguard/config.toml")
}
