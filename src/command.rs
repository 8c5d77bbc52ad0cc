//! Running a vendor's command (the `script` bootloader) with a deadline:
//! stdout and stderr are read while it runs, so a chatty command never stalls on a full pipe;
//! what is kept of each is bounded; a background process it leaves holding the pipes does not
//! hold fwguard; past the deadline the command and its process group are killed.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What is kept of each of stdout and stderr.
pub const KEPT: usize = 64 * 1024;

/// A command that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Output,
    pub stderr: Output,
}

/// The first [`KEPT`] bytes of a stream, and how many it held in all.
#[derive(Debug, Default)]
pub struct Output {
    pub kept: Vec<u8>,
    pub total: u64,
}

impl Output {
    fn push(&mut self, bytes: &[u8]) {
        let room = KEPT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.total += bytes.len() as u64;
    }

    /// More was written than kept.
    pub fn truncated(&self) -> bool {
        self.total > self.kept.len() as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run it: {0}")]
    Spawn(std::io::Error),
    #[error("waiting for it: {0}")]
    Wait(std::io::Error),
    #[error("no answer within {0:?}; killed")]
    Timeout(Duration),
}

/// One pipe of the child, until it reaches its end.
struct Pipe<R> {
    from: Option<R>,
    into: Output,
}

impl<R: Read + AsFd> Pipe<R> {
    fn new(from: Option<R>) -> Result<Pipe<R>, RunError> {
        if let Some(r) = &from {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            use std::os::fd::AsRawFd;
            fcntl(r.as_fd().as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .map_err(|e| RunError::Spawn(e.into()))?;
        }
        Ok(Pipe {
            from,
            into: Output::default(),
        })
    }

    /// Read what is there now, without blocking; at the end (or on an error) stop reading.
    fn drain(&mut self, until: Instant) {
        let mut buf = [0u8; 16 * 1024];
        while let Some(r) = self.from.as_mut() {
            match r.read(&mut buf) {
                Ok(0) => self.from = None,
                Ok(n) => self.into.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.from = None,
            }
            // A writer that never pauses must not keep us past the deadline.
            if Instant::now() >= until {
                return;
            }
        }
    }
}

/// Run `program args...` with stdin closed, in a process group of its own, for at most
/// `timeout`.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Finished, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;
    let until = Instant::now() + timeout;
    let mut out = Pipe::new(child.stdout.take())?;
    let mut err = Pipe::new(child.stderr.take())?;
    loop {
        if let Some(status) = child.try_wait().map_err(RunError::Wait)? {
            // Everything it wrote is in the pipes now; a process it left behind may hold them
            // open, so take what is there and do not wait for their end.
            out.drain(until);
            err.drain(until);
            return Ok(Finished {
                status,
                stdout: out.into,
                stderr: err.into,
            });
        }
        if Instant::now() >= until {
            kill(&mut child);
            return Err(RunError::Timeout(timeout));
        }
        wait_readable(&out, &err, until);
        out.drain(until);
        err.drain(until);
    }
}

/// Sleep until a pipe has something to read or has ended, 10 ms at most (the child's exit is
/// noticed by polling).
fn wait_readable(out: &Pipe<ChildStdout>, err: &Pipe<ChildStderr>, until: Instant) {
    let ms = until
        .saturating_duration_since(Instant::now())
        .as_millis()
        .min(10) as u16;
    let mut fds: Vec<PollFd> = Vec::with_capacity(2);
    if let Some(o) = &out.from {
        fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
    }
    if let Some(e) = &err.from {
        fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
    }
    if fds.is_empty() {
        std::thread::sleep(Duration::from_millis(ms.into()));
    } else {
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}

/// Kill the command and everything in its process group, and reap it.
fn kill(child: &mut Child) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<Finished, RunError> {
        run("sh", &["-c", script], timeout)
    }

    #[test]
    fn a_megabyte_of_stderr_does_not_stall_the_command_and_what_is_kept_is_bounded() {
        let start = Instant::now();
        let f = sh(
            "head -c 1048576 /dev/zero >&2; echo answer",
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(f.status.success());
        assert_eq!(f.stdout.kept, b"answer\n");
        assert_eq!(f.stderr.kept.len(), KEPT);
        assert_eq!(f.stderr.total, 1 << 20);
        assert!(f.stderr.truncated() && !f.stdout.truncated());
    }

    #[test]
    fn a_background_process_holding_the_pipes_does_not_hold_the_caller() {
        let start = Instant::now();
        let f = sh("sleep 60 & echo done", Duration::from_secs(20)).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(f.stdout.kept, b"done\n");
    }

    #[test]
    fn past_the_deadline_the_command_and_its_group_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let e = sh(&script, Duration::from_millis(500)).unwrap_err();
        assert!(matches!(e, RunError::Timeout(_)), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone too (killed with the group; reaped by init).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.contains(") Z ")
        });
        assert!(gone, "the background sleep still runs");
        assert!(run("/no/such/program", &[], Duration::from_secs(1)).is_err());
    }
}
