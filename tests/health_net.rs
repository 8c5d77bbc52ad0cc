//! Health checks on a real network: a router namespace behind a veth to an internet
//! namespace with DNS and HTTP. Each check kind passes on a working router and fails when
//! connectivity breaks the way it does in the field. Needs root, iproute2, dnsmasq, python3.

mod netns;

use netns::{Net, ISP};
use std::collections::BTreeMap;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_fwguard");

struct Setup {
    net: Net,
    cfg: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    /// The runtime directory's parent, in RAM (fwguard writes runtime files nowhere else).
    _run: tempfile::TempDir,
}

/// A config with every check kind, for this net's WAN interface. The process and listen
/// checks look for a service the test starts in the router namespace.
fn setup(extra: &str) -> Setup {
    setup_with(extra, |c| c)
}

fn setup_with(extra: &str, edit: impl Fn(String) -> String) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir_in("/dev/shm").unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("ok.txt"), "ok\n").unwrap();
    let net = Net::new(&www);
    let wan = net.wan.clone();
    let svc = format!("fwgsvc{}", net.id);
    let cfg = tmp.path().join("config.toml");
    let key = fwguard::index::sign::SecretKey::generate()
        .unwrap()
        .public()
        .to_base64();
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
state_dir = "{state}"
runtime_dir = "{run}"
[index]
url = "http://{ISP}/index.toml"
trusted_keys = ["{key}"]
[board]
profile = "sim"
dir = "{sim}"
{extra}
[[health.check]]
name = "link"
kind = "link"
interface = "{wan}"
[[health.check]]
name = "address4"
kind = "address"
interface = "{wan}"
family = "ipv4"
[[health.check]]
name = "address6"
kind = "address"
interface = "{wan}"
family = "ipv6"
[[health.check]]
name = "route4"
kind = "route"
family = "ipv4"
[[health.check]]
name = "route6"
kind = "route"
family = "ipv6"
[[health.check]]
name = "dns-system"
kind = "dns"
query = "fwguard.test"
timeout = "2s"
[[health.check]]
name = "dns-direct"
kind = "dns"
query = "fwguard.test"
server = "{ISP}"
timeout = "2s"
[[health.check]]
name = "http"
kind = "http"
url = "http://{ISP}/ok.txt"
timeout = "2s"
[[health.check]]
name = "tcp"
kind = "tcp"
address = "{ISP}:80"
timeout = "2s"
[[health.check]]
name = "ping"
kind = "ping"
host = "{ISP}"
timeout = "1s"
[[health.check]]
name = "process"
kind = "process"
process = "{svc}"
[[health.check]]
name = "listen"
kind = "listen"
port = 8053
protocol = "tcp"
[[health.check]]
name = "command"
kind = "command"
argv = ["/bin/sh", "-c", "test -e {flag}"]
[[health.check]]
name = "clock"
kind = "clock"
"#,
            state = tmp.path().join("state").display(),
            run = run.path().join("run").display(),
            sim = tmp.path().join("sim").display(),
            flag = tmp.path().join("flag").display(),
        ),
    )
    .unwrap();
    std::fs::write(&cfg, edit(std::fs::read_to_string(&cfg).unwrap())).unwrap();
    std::fs::write(tmp.path().join("flag"), "").unwrap();
    let mut s = Setup {
        net,
        cfg,
        _tmp: tmp,
        _run: run,
    };
    // The router's own services: a named process and a local listener.
    let sleep = s.net.dir.join(&svc);
    std::fs::copy("/bin/sleep", &sleep).unwrap();
    s.net.spawn_router(&[sleep.to_str().unwrap(), "300"]);
    s.net.spawn_router(&[
        "python3",
        "-m",
        "http.server",
        "8053",
        "--bind",
        "127.0.0.1",
    ]);
    let start = std::time::Instant::now();
    loop {
        let r = results(&s);
        if r.values().all(|&p| p) {
            return s;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "the router's network did not come up: {r:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Run `fwguard health --json` inside the router namespace: check name -> passed.
fn results(s: &Setup) -> BTreeMap<String, bool> {
    let o = s
        .net
        .in_router(&[BIN, "--config", s.cfg.to_str().unwrap(), "health", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let ok = v["verdict"]["failing"].as_array().unwrap().is_empty();
    assert_eq!(
        o.status.code(),
        Some(if ok { 0 } else { 9 }),
        "exit code follows the verdict"
    );
    v["report"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["passed"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Assert exactly `failing` fail (and everything else passes).
fn expect(s: &Setup, failing: &[&str]) {
    let r = results(s);
    let got: Vec<&str> = r
        .iter()
        .filter(|(_, &p)| !p)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut want = failing.to_vec();
    want.sort();
    assert_eq!(got, want, "all results: {r:?}");
}

#[test]
fn every_check_passes_on_a_working_router() {
    let s = setup("");
    expect(&s, &[]);
}

#[test]
fn link_down() {
    let s = setup("");
    s.net.link(false);
    // The kernel drops the routes with the link; nothing beyond it answers.
    expect(
        &s,
        &[
            "link",
            "route4",
            "route6",
            "dns-system",
            "dns-direct",
            "http",
            "tcp",
            "ping",
            "address6",
        ],
    );
}

#[test]
fn address_removed() {
    let s = setup("");
    s.net.flush_addresses();
    // The IPv4 default route goes with its subnet; the IPv6 one stays bound to the device.
    expect(
        &s,
        &[
            "address4",
            "address6",
            "route4",
            "dns-system",
            "dns-direct",
            "http",
            "tcp",
            "ping",
        ],
    );
}

#[test]
fn default_route_removed() {
    let s = setup("");
    s.net.default_routes(false);
    // The ISP's own server is on-link, so only the route checks notice.
    expect(&s, &["route4", "route6"]);
}

#[test]
fn dns_server_stopped() {
    let mut s = setup("");
    s.net.stop_dns();
    expect(&s, &["dns-system", "dns-direct"]);
}

#[test]
fn http_server_stopped() {
    let mut s = setup("");
    s.net.stop_http();
    expect(&s, &["http", "tcp"]);
}

#[test]
fn packets_dropped() {
    let s = setup("");
    s.net.drop_packets(true);
    expect(&s, &["dns-system", "dns-direct", "http", "tcp", "ping"]);
    s.net.drop_packets(false);
    expect(&s, &[]);
}

#[test]
fn router_services_stopped() {
    let mut s = setup("");
    s.net.kill_router(0);
    s.net.kill_router(1);
    std::fs::remove_file(s.cfg.with_file_name("flag")).unwrap();
    expect(&s, &["process", "listen", "command"]);
}

#[test]
fn k_of_n_groups_and_advisory_checks() {
    // Four checks in one group: any two of them reachable is enough. The clock is advisory.
    let mut s = setup_with(
        "[[health.group]]\nname = \"internet\"\nneed = 2\n",
        |text| {
            let text = ["dns-direct", "http", "tcp", "ping"]
                .iter()
                .fold(text, |t, n| {
                    t.replace(
                        &format!("name = \"{n}\"\n"),
                        &format!("name = \"{n}\"\ngroup = \"internet\"\n"),
                    )
                });
            text.replace("name = \"clock\"\n", "name = \"clock\"\nadvisory = true\n")
        },
    );
    let verdict = |s: &Setup| {
        let o = s
            .net
            .in_router(&[BIN, "--config", s.cfg.to_str().unwrap(), "health", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            o.status.code(),
            v["verdict"]["failing"].as_array().unwrap().len(),
        )
    };
    assert_eq!(verdict(&s), (Some(0), 0));
    s.net.stop_http(); // http and tcp fail: dns-direct and ping still make two of four
    assert_eq!(verdict(&s), (Some(0), 0));
    s.net.stop_dns(); // dns-system (alone) and the group (one of four) fail
    assert_eq!(verdict(&s), (Some(9), 2));
}

#[test]
fn the_clock_check_uses_the_time_floor() {
    // Checked through the library with a clock set to 1970: the firmware build time is the
    // floor. (A kernel that reports NTP synchronisation passes regardless, by design.)
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut w = fwguard::sim::world::World::create(dir.path().join("w"), Default::default())
            .await
            .unwrap();
        w.power_cycle().await.unwrap();
        let cfg = w.write_config("", "").unwrap();
        let text = std::fs::read_to_string(&cfg).unwrap();
        let only_clock = text.split("[[health.check]]").next().unwrap().to_string()
            + "[[health.check]]\nname = \"clock\"\nkind = \"clock\"\n";
        std::fs::write(&cfg, only_clock).unwrap();
        let settings = fwguard::config::Settings::load(&cfg).unwrap();
        let agent = fwguard::agent::Agent::from_settings(settings.clone()).unwrap();
        assert!(
            agent.health_now().await.is_ok(),
            "today is past the firmware build time"
        );
        let synced = fwguard::health::local::clock(0, 4_000_000_000).is_ok();
        let in_1970 = fwguard::agent::Agent::from_settings(settings)
            .unwrap()
            .with_clock(std::sync::Arc::new(|| 0));
        let r = in_1970.health_now().await;
        if synced {
            assert!(r.is_ok());
        } else {
            let err = r.unwrap_err().to_string();
            assert!(err.contains("before the time floor 2026-11-01"), "{err}");
        }
    });
    let _ = Path::new(".");
}

/// The sim router's daemon runs inside the router namespace; the vendor's index and images
/// are served from the internet namespace; a firmware that breaks the WAN takes the real
/// link down. An update that breaks connectivity rolls back; one that does not commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_router_updates_on_a_real_network() {
    use fwguard::sim::world::{World, WorldOptions};
    use fwguard::state::{PersistedState, StateStore, UpdateState};
    use fwguard::Slot;
    use std::os::unix::process::ExitStatusExt;

    let tmp = tempfile::tempdir().unwrap();
    let mut world = World::create(tmp.path().join("w"), WorldOptions::default())
        .await
        .unwrap();
    world
        .add_image("1.1", fwguard::sim::Behaviour::GOOD)
        .unwrap();
    world
        .add_image(
            "1.2",
            fwguard::sim::Behaviour {
                wan_up: false,
                boots: true,
                root: false,
            },
        )
        .unwrap();
    let net = Net::new(&world.www);
    let cfg = world.root.join("netns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
state_dir = "{state}"
runtime_dir = "{run}"
policy = "auto"
check_interval = "1s"
[index]
url = "http://{ISP}/index.toml"
trusted_key_files = ["{key}"]
[board]
profile = "sim"
dir = "{router}"
[trial]
deadline = "3s"
retry_interval = "200ms"
soak = "0s"
[[health.check]]
name = "wan-link"
kind = "link"
interface = "{wan}"
[[health.check]]
name = "dns"
kind = "dns"
query = "fwguard.test"
timeout = "1s"
[[health.check]]
name = "isp"
kind = "ping"
host = "{ISP}"
timeout = "1s"
[[health.check]]
name = "vendor"
kind = "http"
url = "http://{ISP}/index.toml"
timeout = "2s"
"#,
            state = world.root.join("state").display(),
            run = world.runtime_dir().display(),
            key = world.root.join("vendor/vendor.pub").display(),
            router = world.router.dir().display(),
            wan = net.wan,
        ),
    )
    .unwrap();
    let store = StateStore::new(world.root.join("state"));
    world.router.reboot().unwrap();

    // Run the daemon in the router namespace until it exits for a reboot (then power-cycle
    // the router and set the link as the booted firmware does) or `done` holds.
    let cycle = |world: &World, done: &dyn Fn(&PersistedState, Option<Slot>) -> bool| {
        for _ in 0..6 {
            let mut child = net
                .in_router(&[BIN, "--config", cfg.to_str().unwrap(), "daemon"])
                .spawn()
                .unwrap();
            let start = std::time::Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success() && world.router.reboot_requested(),
                        "daemon: {status}"
                    );
                    let r = world.router.reboot().unwrap();
                    net.link(r.wan_up);
                    break;
                }
                if store
                    .load()
                    .is_ok_and(|st| done(&st, world.router.booted()))
                    && !world.router.reboot_requested()
                {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    )
                    .unwrap();
                    let status = child.wait().unwrap();
                    assert!(status.success() || status.signal().is_some());
                    return;
                }
                assert!(start.elapsed().as_secs() < 30, "the daemon did not settle");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("no settled state after six boots");
    };
    let committed = |v: &'static str, slot: Slot| {
        move |st: &PersistedState, booted: Option<Slot>| {
            st.update == UpdateState::Idle
                && booted == Some(slot)
                && st.known_good == Some(slot)
                && st
                    .slot(slot)
                    .is_some_and(|r| r.good && r.version.as_str() == v)
        }
    };

    world.publish(&["1.0", "1.1"]).unwrap();
    cycle(&world, &committed("1.1", Slot::B));
    world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    let rolled_back = |st: &PersistedState, booted: Option<Slot>| {
        committed("1.1", Slot::B)(st, booted) && st.is_denylisted(&"1.2".parse().unwrap())
    };
    cycle(&world, &rolled_back);
    let st = store.load().unwrap();
    let rb = st.history.iter().find(|h| h.event == "rollback").unwrap();
    assert!(
        rb.checks.iter().any(|c| c.name == "wan-link" && !c.passed),
        "{rb:?}"
    );
    assert!(
        rb.checks.iter().any(|c| c.name == "isp" && !c.passed),
        "{rb:?}"
    );
    assert!(
        st.history
            .iter()
            .any(|h| h.event == "committed"
                && h.version.as_ref().is_some_and(|v| v.as_str() == "1.1"))
    );
}
