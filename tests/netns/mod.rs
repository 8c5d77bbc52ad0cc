//! A real network for health checks: a `router` network namespace joined by a veth pair to
//! an `internet` namespace that runs a DNS server (dnsmasq) and an HTTP server (python3) on
//! its own addresses. Only addresses inside these namespaces are used. Everything is torn
//! down on drop, also when a test fails. Needs root and iproute2 (tests/run.sh installs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const ISP: &str = "10.251.0.1";
pub const ROUTER: &str = "10.251.0.2";
pub const ISP6: &str = "fd00:fb::1";

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn run(args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (tests/run.sh installs it)", args[0]));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub struct Net {
    pub id: String,
    pub router: String,
    pub internet: String,
    pub wan: String,
    isp: String,
    pub dir: PathBuf,
    dns: Option<Child>,
    http: Option<Child>,
    others: Vec<Child>,
}

impl Net {
    /// Build both namespaces; `www` is served over HTTP on ISP:80.
    pub fn new(www: &Path) -> Net {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("fwg-net-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut net = Net {
            router: format!("fwgr{id}"),
            internet: format!("fwgi{id}"),
            wan: format!("wan{id}"),
            isp: format!("isp{id}"),
            id,
            dir,
            dns: None,
            http: None,
            others: Vec::new(),
        };
        let (r, i, wan, isp) = (
            net.router.clone(),
            net.internet.clone(),
            net.wan.clone(),
            net.isp.clone(),
        );
        run(&["ip", "netns", "add", &r]);
        run(&["ip", "netns", "add", &i]);
        run(&[
            "ip", "link", "add", &wan, "type", "veth", "peer", "name", &isp,
        ]);
        run(&["ip", "link", "set", &wan, "netns", &r]);
        run(&["ip", "link", "set", &isp, "netns", &i]);
        for (ns, dev, v4, v6) in [
            (&r, &wan, "10.251.0.2/24", "fd00:fb::2/64"),
            (&i, &isp, "10.251.0.1/24", "fd00:fb::1/64"),
        ] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            run(&["ip", "-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        net.default_routes(true);
        // `ip netns exec` bind-mounts this over /etc/resolv.conf in the router namespace.
        let etc = PathBuf::from(format!("/etc/netns/{r}"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {ISP}\n")).unwrap();
        net.start_dns();
        net.start_http(www);
        net
    }

    pub fn default_routes(&self, on: bool) {
        let verb = if on { "add" } else { "del" };
        run(&[
            "ip",
            "-n",
            &self.router,
            "route",
            verb,
            "default",
            "via",
            ISP,
        ]);
        run(&[
            "ip",
            "-n",
            &self.router,
            "-6",
            "route",
            verb,
            "default",
            "via",
            ISP6,
        ]);
    }

    fn spawn_in(&self, ns: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn start_dns(&mut self) {
        let addr = format!("--address=/fwguard.test/{ISP}");
        let listen = format!("--listen-address={ISP}");
        let c = self.spawn_in(
            &self.internet.clone(),
            &[
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &listen,
                &addr,
                "--pid-file",
                "--user=root",
                "--conf-file=/dev/null",
            ],
        );
        self.dns = Some(c);
    }

    pub fn stop_dns(&mut self) {
        if let Some(mut c) = self.dns.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_http(&mut self, www: &Path) {
        let c = self.spawn_in(
            &self.internet.clone(),
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                ISP,
                "--directory",
                www.to_str().unwrap(),
            ],
        );
        self.http = Some(c);
    }

    pub fn stop_http(&mut self) {
        if let Some(mut c) = self.http.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start something in the router namespace that lives until the net is dropped.
    pub fn spawn_router(&mut self, args: &[&str]) -> usize {
        let c = self.spawn_in(&self.router.clone(), args);
        self.others.push(c);
        self.others.len() - 1
    }

    pub fn kill_router(&mut self, which: usize) {
        let _ = self.others[which].kill();
        let _ = self.others[which].wait();
    }

    pub fn link(&self, up: bool) {
        run(&[
            "ip",
            "-n",
            &self.router,
            "link",
            "set",
            &self.wan,
            if up { "up" } else { "down" },
        ]);
    }

    pub fn flush_addresses(&self) {
        run(&["ip", "-n", &self.router, "addr", "flush", "dev", &self.wan]);
    }

    /// Silently drop everything the internet sends back to the router.
    pub fn drop_packets(&self, on: bool) {
        for (fam, to) in [("-4", ROUTER), ("-6", "fd00:fb::2")] {
            run(&[
                "ip",
                "-n",
                &self.internet,
                fam,
                "rule",
                if on { "add" } else { "del" },
                "to",
                to,
                "blackhole",
            ]);
        }
    }

    /// A command line run inside the router namespace.
    pub fn in_router(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.router]).args(args);
        c
    }

    /// Wait until `ok` holds (services starting), at most 10 s.
    pub fn wait_for(&self, what: &str, ok: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < end, "{what} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop_dns();
        self.stop_http();
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.router])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.internet])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.router));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
