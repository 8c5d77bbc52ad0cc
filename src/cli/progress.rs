//! The progress of a manual `update` or `install` on stderr: a bar redrawn in place on a
//! terminal, a plain line at every tenth otherwise (logs, pipes, a serial console capture).

use crate::agent::Progress;
use crate::version::Version;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;
const WIDTH: u64 = 30;

struct Shown {
    started: Instant,
    /// Bytes already there when this transfer started (a resumed download).
    from: u64,
    last_draw: Option<Instant>,
    /// The last tenth printed as a plain line.
    tenth: u64,
}

/// A progress reporter for stderr: a bar when stderr is a terminal, else plain lines.
pub fn on_stderr() -> Progress {
    reporter(std::io::stderr().is_terminal())
}

fn reporter(tty: bool) -> Progress {
    let shown: Mutex<Option<(Version, Shown)>> = Mutex::new(None);
    Arc::new(move |version: &Version, done: u64, total: u64| {
        let mut guard = shown.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = !matches!(&*guard, Some((v, _)) if v == version);
        if fresh {
            *guard = Some((
                version.clone(),
                Shown {
                    started: Instant::now(),
                    from: done,
                    last_draw: None,
                    tenth: done * 10 / total.max(1),
                },
            ));
        }
        let Some((_, s)) = guard.as_mut() else { return };
        let line = if tty {
            draw_bar(s, version, done, total)
        } else {
            plain_line(s, version, done, total)
        };
        if let Some(line) = line {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
    })
}

fn draw_bar(s: &mut Shown, version: &Version, done: u64, total: u64) -> Option<String> {
    let finished = done >= total;
    let now = Instant::now();
    if !finished
        && s.last_draw
            .is_some_and(|t| now - t < Duration::from_millis(100))
    {
        return None;
    }
    s.last_draw = Some(now);
    let filled = (done * WIDTH / total.max(1)).min(WIDTH) as usize;
    let secs = s.started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        format!(
            "  {:.1} MiB/s",
            (done - s.from.min(done)) as f64 / MIB / secs
        )
    } else {
        String::new()
    };
    Some(format!(
        "\r{version} [{}{}] {:3}%  {:.1}/{:.1} MiB{rate}\x1b[K{}",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
        done * 100 / total.max(1),
        done as f64 / MIB,
        total as f64 / MIB,
        if finished { "\n" } else { "" }
    ))
}

fn plain_line(s: &mut Shown, version: &Version, done: u64, total: u64) -> Option<String> {
    let tenth = (done * 10 / total.max(1)).min(10);
    if tenth <= s.tenth {
        return None;
    }
    s.tenth = tenth;
    Some(format!(
        "{version}: {}% written ({:.1} of {:.1} MiB)\n",
        tenth * 10,
        done as f64 / MIB,
        total as f64 / MIB
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(from: u64) -> Shown {
        Shown {
            started: Instant::now(),
            from,
            last_draw: None,
            tenth: from * 10 / 1000,
        }
    }

    #[test]
    fn plain_lines_come_once_per_tenth_crossed() {
        let v: Version = "1.1".parse().unwrap();
        let mut s = shown(0);
        let lines: Vec<String> = [50, 99, 100, 150, 350, 999, 1000]
            .iter()
            .filter_map(|&d| plain_line(&mut s, &v, d, 1000))
            .collect();
        assert_eq!(
            lines,
            [
                "1.1: 10% written (0.0 of 0.0 MiB)\n",
                "1.1: 30% written (0.0 of 0.0 MiB)\n",
                "1.1: 90% written (0.0 of 0.0 MiB)\n",
                "1.1: 100% written (0.0 of 0.0 MiB)\n",
            ]
        );
        // A resumed download starts counting from where it was.
        let mut s = shown(500);
        assert_eq!(plain_line(&mut s, &v, 550, 1000), None);
        assert!(plain_line(&mut s, &v, 600, 1000).unwrap().contains("60%"));
    }

    #[test]
    fn the_bar_is_redrawn_in_place_and_ends_the_line_when_full() {
        let v: Version = "2.0".parse().unwrap();
        let mut s = shown(0);
        let half = draw_bar(&mut s, &v, 512 << 10, 1 << 20).unwrap();
        assert!(half.starts_with("\r2.0 ["), "{half:?}");
        assert!(half.contains(&format!("{}{}", "#".repeat(15), "-".repeat(15))));
        assert!(
            half.contains(" 50%  0.5/1.0 MiB") && !half.ends_with('\n'),
            "{half:?}"
        );
        // Redrawn at most every 100 ms, but the end always.
        assert_eq!(draw_bar(&mut s, &v, 600 << 10, 1 << 20), None);
        let end = draw_bar(&mut s, &v, 1 << 20, 1 << 20).unwrap();
        assert!(end.contains(&"#".repeat(30)) && end.contains("100%") && end.ends_with('\n'));
    }
}
