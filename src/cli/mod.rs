//! The `fwguard` command line: parse once into typed commands, call the library, map
//! errors to the stable exit codes in [`crate::error`].

mod archive_cmd;
mod args;
mod doctor;
pub mod index_tool;
mod log;
mod progress;
mod rpcd;
#[cfg(feature = "demo")]
mod sim_cmd;
mod syslog;

use crate::agent::{Action, Agent, By, DaemonExit, RoundResult, UpdateMode};
use crate::config::{self, Settings};
use crate::error::{Error, EXIT_NO_UPDATE, EXIT_OK};
use crate::index::select::Choice;
use crate::time::format_time;
pub use args::Cli;
use args::Command;
use clap::Parser;

/// Log to stderr, or to syslog at `syslog` (falling back to stderr, saying why, when its
/// socket cannot be reached). Returns whether syslog is in use.
fn init_logging(verbose: Option<u8>, syslog: Option<&std::path::Path>) -> bool {
    use tracing::Level;
    let level = match verbose {
        None => Level::ERROR,
        Some(0) => Level::INFO,
        Some(1) => Level::DEBUG,
        Some(_) => Level::TRACE,
    };
    // $FWGUARD_LOG: "debug", or per target, "fwguard=debug,hyper=info".
    let filter = std::env::var("FWGUARD_LOG")
        .ok()
        .and_then(|v| log::Filter::parse(&v))
        .unwrap_or_else(|| log::Filter::fwguard(level));
    let syslog = syslog.and_then(|p| match syslog::Syslog::connect(p) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "fwguard: cannot log to syslog at {} ({e}); logging to stderr",
                p.display()
            );
            None
        }
    });
    let to_syslog = syslog.is_some();
    let _ = tracing::subscriber::set_global_default(log::Logger::new(filter, syslog));
    to_syslog
}

/// A logger to stderr at info level ($FWGUARD_LOG as for fwguard), for the vendor's tools.
pub fn stderr_logger() -> impl tracing::Subscriber + Send + Sync {
    let filter = std::env::var("FWGUARD_LOG")
        .ok()
        .and_then(|v| log::Filter::parse(&v))
        .unwrap_or_else(|| log::Filter::fwguard(tracing::Level::INFO));
    log::Logger::new(filter, None)
}

/// The runtime of one command. Dropped, it waits a moment for blocking work still running,
/// never longer: a read abandoned at its deadline (a `file://` fetch from a hung device) may
/// never return, and dropping a runtime would wait for it forever.
pub(crate) struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    /// Run `f` to completion on this thread. Every command's future goes through one
    /// instantiation of tokio's `block_on` (boxed) instead of one per future type: the
    /// scheduler's loop is then in the binary once (-8 KB on armv7).
    pub(crate) fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let mut out = None;
        self.block_on_boxed(Box::pin(async { out = Some(f.await) }));
        out.expect("block_on runs the future to completion")
    }

    #[inline(never)]
    fn block_on_boxed(&self, f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>) {
        let rt: &tokio::runtime::Runtime = self;
        rt.block_on(f)
    }
}

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime runs until dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

fn runtime() -> Runtime {
    Runtime(Some(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    ))
}

fn load_agent(flag: Option<&std::path::Path>) -> Result<Agent, Error> {
    let path = config::resolve_path(flag);
    Agent::from_settings(Settings::load(&path)?)
}

/// How far an owner's install goes (`--stage-only`).
fn update_mode(stage_only: bool) -> UpdateMode {
    if stage_only {
        UpdateMode::StageOnly
    } else {
        UpdateMode::Install
    }
}

/// The agent with the owner's `--no-settings`, if given.
fn defaults(agent: Agent, no_settings: bool) -> Agent {
    if no_settings {
        agent.on_defaults()
    } else {
        agent
    }
}

fn report(action: Action) {
    match action {
        Action::UpToDate(why) => println!("up to date: {why}"),
        Action::Staged(v) => {
            println!("{v} is written and verified in the inactive slot; `fwguard update` boots it")
        }
        Action::Reboot(why) => println!("rebooting: {why}"),
        Action::Committed(v) => println!("committed {v}"),
        Action::Done(what) => println!("{what}"),
        Action::NeedsOwner { reason, .. } => {
            println!("{}", crate::agent::needs_owner(&reason))
        }
    }
}

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Daemon) {
        crate::memory::map_code_lazily();
    }
    // The demo prints its own timeline; its log lines would only repeat it.
    #[cfg(feature = "demo")]
    let quiet = matches!(cli.command, Command::Demo { .. }) && cli.verbose == 0;
    #[cfg(not(feature = "demo"))]
    let quiet = false;
    let to_syslog = init_logging(
        if quiet { None } else { Some(cli.verbose) },
        cli.syslog.as_deref(),
    );
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let chain = crate::health::error_chain(&e);
            if to_syslog {
                tracing::error!("{chain}");
            }
            eprintln!("fwguard: error: {chain}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    let cfg = cli.config.as_deref();
    let rt = runtime();
    match cli.command {
        Command::Check {
            exit_code,
            now: true,
        } => {
            let r = rt.block_on(load_agent(cfg)?.check_now())?;
            println!("{}", r.outcome);
            return Ok(match r.result {
                RoundResult::Failed => r.exit_code,
                RoundResult::UpToDate if exit_code => EXIT_NO_UPDATE,
                _ => EXIT_OK,
            });
        }
        Command::Check {
            exit_code,
            now: false,
        } => {
            let agent = load_agent(cfg)?;
            let r = rt.block_on(agent.check())?;
            println!(
                "index version {}; running {}",
                r.index_version,
                r.running_text()
            );
            match r.choice {
                Choice::Install(rel) => {
                    println!("update available: {} ({} bytes)", rel.version, rel.size)
                }
                Choice::UpToDate { reason } => {
                    println!("up to date: {reason}");
                    if exit_code {
                        return Ok(EXIT_NO_UPDATE);
                    }
                }
                Choice::NeedsOwner { reason, .. } => {
                    println!("{}", crate::agent::needs_owner(&reason))
                }
            }
        }
        Command::Update {
            stage_only,
            force,
            no_settings,
        } => {
            let agent =
                defaults(load_agent(cfg)?, no_settings).with_progress(progress::on_stderr());
            let mode = update_mode(stage_only);
            report(rt.block_on(agent.update_by(mode, By::Owner { force }))?);
        }
        Command::Install {
            path,
            index,
            stage_only,
            force,
            no_settings,
        } => {
            let agent =
                defaults(load_agent(cfg)?, no_settings).with_progress(progress::on_stderr());
            let mode = update_mode(stage_only);
            report(rt.block_on(agent.install_offline(&path, index.as_deref(), mode, force))?);
        }
        Command::Health { json } => {
            let agent = load_agent(cfg)?;
            let r = rt.block_on(agent.manual_health_round());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).expect("record serialises")
                );
            } else {
                for c in &r.report.results {
                    let mark = if c.passed { "pass" } else { "FAIL" };
                    println!("{mark} {} ({} ms): {}", c.name, c.duration_ms, c.detail);
                }
                for a in &r.verdict.advisory {
                    println!("advisory, not blocking: {a}");
                }
            }
            r.passed()?;
        }
        Command::Daemon => {
            let agent = load_agent(cfg)?;
            let exit = rt.block_on(agent.run_daemon(shutdown_signal()))?;
            match exit {
                DaemonExit::Stopped => tracing::info!("stopped"),
                DaemonExit::Reboot(why) => tracing::info!("exiting for reboot: {why}"),
            }
        }
        Command::Assess => report(rt.block_on(load_agent(cfg)?.assess())?),
        Command::Status { json } => {
            let s = load_agent(cfg)?.status()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).expect("status serialises")
                );
            } else {
                print!("{s}");
            }
        }
        Command::History { json } => {
            let st = load_agent(cfg)?.load()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st.history).expect("history serialises")
                );
            } else {
                for h in &st.history {
                    let what = h
                        .version
                        .as_ref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default();
                    let slot = h.slot.map(|s| format!(" slot {s}")).unwrap_or_default();
                    println!(
                        "{}  {}{what}{slot}: {}",
                        format_time(h.at),
                        h.event,
                        h.detail
                    );
                    for c in &h.checks {
                        let mark = if c.passed { "pass" } else { "FAIL" };
                        println!(
                            "      {mark} {} ({} ms): {}",
                            c.name, c.duration_ms, c.detail
                        );
                    }
                }
            }
        }
        Command::Rollback => report(load_agent(cfg)?.rollback()?),
        Command::Pin {
            version,
            force_insecure,
            no_settings,
        } => report(
            rt.block_on(
                defaults(load_agent(cfg)?, no_settings)
                    .with_progress(progress::on_stderr())
                    .pin(version, force_insecure),
            )?,
        ),
        Command::Unpin => report(load_agent(cfg)?.unpin()?),
        Command::Hold => report(load_agent(cfg)?.hold()?),
        Command::Policy { mode } => report(load_agent(cfg)?.set_policy(mode)?),
        Command::Approve { version } => report(rt.block_on(load_agent(cfg)?.approve(version))?),
        Command::Deny { version } => report(load_agent(cfg)?.deny(version)?),
        Command::Channel { name } => report(load_agent(cfg)?.set_channel(&name)?),
        Command::MarkGood => report(load_agent(cfg)?.mark_good()?),
        Command::Archive(cmd) => {
            let agent = load_agent(cfg)?.with_progress(progress::on_stderr());
            return archive_cmd::run(agent, &rt, cmd);
        }
        Command::Doctor => return doctor::run(cfg),
        Command::Rpcd { action, method } => return Ok(rpcd::run(cfg, &action, method.as_deref())),
        Command::Diag { output } => {
            let agent = load_agent(cfg)?;
            let out = output.unwrap_or_else(|| {
                format!("fwguard-diag-{}.tar.gz", crate::time::unix_now()).into()
            });
            agent
                .write_diag(&out)
                .map_err(|e| Error::Other(format!("writing {}: {e}", out.display())))?;
            println!("wrote {}", out.display());
        }
        #[cfg(feature = "demo")]
        Command::Sim(cmd) => return sim_cmd::run(cmd),
        #[cfg(feature = "demo")]
        Command::Demo { dir } => return rt.block_on(crate::sim::demo::run(dir)),
    }
    Ok(EXIT_OK)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
