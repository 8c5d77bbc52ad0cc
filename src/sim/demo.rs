//! `fwguard demo`: the whole cycle on a simulated router, with a readable timeline.
//!
//! 1.0 runs in slot A; the vendor publishes 1.1 (good): the daemon installs it into slot B,
//! the router reboots into a trial, health checks pass, 1.1 is committed. The vendor then
//! publishes 1.2, which breaks the WAN: the daemon installs it into slot A, the trial's
//! health checks fail until the deadline, the daemon rolls back to 1.1 by itself and
//! denylists 1.2. Exits 0 only if the device ends exactly there.

use super::world::{World, WorldOptions};
use super::Behaviour;
use crate::agent::{Agent, DaemonExit};
use crate::config::Settings;
use crate::error::{Error, EXIT_INTERNAL, EXIT_OK};
use crate::slot::Slot;
use crate::state::UpdateState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ROUND_LIMIT: Duration = Duration::from_secs(60);

struct Timeline {
    start: Instant,
    seen: usize,
}

impl Timeline {
    fn say(&self, who: &str, what: impl AsRef<str>) {
        println!(
            "[{:6.2}s] {who:<10} {}",
            self.start.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }

    /// Print the agent's history entries that are new since the last call.
    fn agent(&mut self, agent: &Agent) -> Result<(), Error> {
        let st = agent.load()?;
        for h in &st.history[self.seen.min(st.history.len())..] {
            let v = h
                .version
                .as_ref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            self.say("fwguard", format!("{}{v}: {}", h.event, h.detail));
            for c in &h.checks {
                let mark = if c.passed { "pass" } else { "FAIL" };
                self.say("", format!("  {mark} {}: {}", c.name, c.detail));
            }
        }
        self.seen = st.history.len();
        Ok(())
    }
}

fn temp_root() -> PathBuf {
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    std::env::temp_dir().join(format!(
        "fwguard-demo-{}-{}",
        std::process::id(),
        hex::encode(r)
    ))
}

pub async fn run(dir: Option<PathBuf>) -> Result<i32, Error> {
    let keep = dir.is_some();
    let root = dir.unwrap_or_else(temp_root);
    let result = run_in(root.clone()).await;
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("the simulated world is kept in {}", root.display());
    }
    result
}

/// Run one daemon process lifetime, printing its history live. `on_tick` sees the persisted
/// state as it changes (the demo's vendor reacts to it).
async fn daemon_round(
    settings: &Settings,
    tl: &mut Timeline,
    shutdown_after: Option<Duration>,
    mut on_tick: impl FnMut(&crate::state::PersistedState, &Timeline) -> Result<(), Error>,
) -> Result<(Agent, DaemonExit), Error> {
    let agent = Agent::from_settings(settings.clone())?;
    let exit = {
        let shutdown = async {
            match shutdown_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let daemon = tokio::time::timeout(ROUND_LIMIT, agent.run_daemon(shutdown));
        tokio::pin!(daemon);
        loop {
            tokio::select! {
                r = &mut daemon => break r,
                _ = tokio::time::sleep(Duration::from_millis(25)) => {
                    tl.agent(&agent)?;
                    on_tick(&agent.load()?, tl)?;
                }
            }
        }
    };
    let exit =
        exit.map_err(|_| Error::Other("the daemon did not finish its round in time".into()))??;
    tl.agent(&agent)?;
    tl.say(
        "fwguard",
        format!(
            "daemon exits: {}",
            match &exit {
                DaemonExit::Stopped => "stopped".to_string(),
                DaemonExit::Reboot(why) => format!("reboot for {why}"),
            }
        ),
    );
    Ok((agent, exit))
}

async fn run_in(root: PathBuf) -> Result<i32, Error> {
    let mut tl = Timeline {
        start: Instant::now(),
        seen: 0,
    };
    println!("fwguard demo: a simulated A/B router, a vendor index on a loopback web server, a WAN endpoint");
    println!("world: {}\n", root.display());
    let mut world = World::create(&root, WorldOptions::default()).await?;
    world.add_image("1.1", Behaviour::GOOD)?;
    world.add_image(
        "1.2",
        Behaviour {
            wan_up: false,
            boots: true,
            root: false,
        },
    )?;
    let cfg_path = world.write_config(
        "policy = \"auto\"",
        "deadline = \"3s\"\nretry_interval = \"300ms\"\nsoak = \"900ms\"",
    )?;
    let settings = Settings::load(&cfg_path)?;
    tl.say(
        "vendor",
        format!(
            "publishes signed index v{} with 1.0 and 1.1 at {}",
            world.publish(&["1.0", "1.1"])?,
            world.index_url()
        ),
    );

    let boot = |tl: &Timeline, r: &super::BootReport| {
        for l in &r.log {
            tl.say("router", l);
        }
        tl.say(
            "router",
            format!("WAN is {}", if r.wan_up { "up" } else { "DOWN" }),
        );
    };

    let none = |_: &crate::state::PersistedState, _: &Timeline| Ok(());

    // Power on: 1.0 from slot A. The daemon adopts it and installs 1.1.
    let r = world.power_cycle().await?;
    boot(&tl, &r);
    daemon_round(&settings, &mut tl, None, none).await?;

    // Reboot into the 1.1 trial. The daemon commits it; while it keeps checking on its
    // interval, the vendor publishes 1.2 and the daemon installs it.
    let r = world.power_cycle().await?;
    boot(&tl, &r);
    let mut published = false;
    daemon_round(&settings, &mut tl, None, |st, tl| {
        if !published && st.history.iter().any(|h| h.event == "committed") {
            published = true;
            let v = world.publish(&["1.0", "1.1", "1.2"])?;
            tl.say("vendor", format!("publishes signed index v{v} adding 1.2"));
        }
        Ok(())
    })
    .await?;

    // Reboot into the 1.2 trial: the WAN is down, the checks fail, the daemon rolls back.
    let r = world.power_cycle().await?;
    boot(&tl, &r);
    daemon_round(&settings, &mut tl, None, none).await?;

    // Back on 1.1: the daemon finishes the rollback and finds nothing to install.
    let r = world.power_cycle().await?;
    boot(&tl, &r);
    let (agent, _) =
        daemon_round(&settings, &mut tl, Some(Duration::from_millis(500)), none).await?;

    let status = agent.status()?;
    println!("\nfinal status:\n{status}");
    let st = agent.load()?;
    let committed = |v: &str| {
        st.history
            .iter()
            .any(|h| h.event == "committed" && h.version.as_ref().map(|x| x.as_str()) == Some(v))
    };
    let rolled = |v: &str| {
        st.history
            .iter()
            .any(|h| h.event == "rollback" && h.version.as_ref().map(|x| x.as_str()) == Some(v))
    };
    let checks = [
        ("1.1 was committed", committed("1.1")),
        ("1.2 was rolled back automatically", rolled("1.2")),
        (
            "1.1 runs from slot B",
            status.booted_slot == Slot::B
                && status.running_version.as_ref().map(|v| v.as_str()) == Some("1.1"),
        ),
        ("no update in progress", status.update == UpdateState::Idle),
        (
            "bootloader committed to slot B",
            status.boot.primary == Slot::B && !status.boot.trial,
        ),
        (
            "slot B is the known-good slot",
            st.known_good == Some(Slot::B),
        ),
        (
            "1.2 is denylisted",
            status.denylist.iter().any(|d| d.version.as_str() == "1.2"),
        ),
        ("router ended healthy (WAN up)", r.wan_up),
    ];
    let mut ok = true;
    for (what, passed) in checks {
        println!("{} {what}", if passed { "ok  " } else { "FAIL" });
        ok &= passed;
    }
    println!("\ndemo {}", if ok { "passed" } else { "FAILED" });
    Ok(if ok { EXIT_OK } else { EXIT_INTERNAL })
}
