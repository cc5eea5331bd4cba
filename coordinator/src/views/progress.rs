//! Live progress of a job on stderr: bars (indicatif) on a terminal, a summary log line
//! per phase and every few seconds otherwise. Also the log setup that keeps log lines
//! from tearing through the bars.

use crate::service::Shared;
use crate::views::report::human_bytes;
use crate::views::status::Counts;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tracing::info;

/// How often the bars are redrawn (the clock and throughput move between changes).
const REDRAW: Duration = Duration::from_millis(150);
/// How often, at most, a summary line is logged when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The bars on screen, if any, so that log lines can be printed above them.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Writes `text` to stderr, above the progress bars when they are shown.
pub fn eprint(text: &[u8]) {
    let bars = BARS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let write = || {
        let _ = std::io::stderr().lock().write_all(text);
    };
    match bars {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

/// One log event, written whole when dropped.
struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        let unheld = HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(lines) => {
                lines.extend_from_slice(&line);
                None
            }
            None => Some(line),
        });
        if let Some(line) = unheld {
            eprint(&line);
        }
    }
}

thread_local! {
    /// Lines held back on this thread by a [`HeldLines`] guard, written together when it
    /// drops; `None` when nothing holds them.
    static HELD: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Holds this thread's log lines until dropped, then writes them in one go. Why: a
/// coordinator call logs two or three lines (completed, assigned) and each `write` to
/// stderr is a syscall; at thousands of tasks a second that was a tenth of the
/// coordinator's CPU. Nested guards are allowed: the outermost one writes.
pub struct HeldLines {
    outermost: bool,
}

/// Starts holding this thread's log lines: see [`HeldLines`].
pub fn hold_lines() -> HeldLines {
    let outermost = HELD.with(|held| {
        let mut held = held.borrow_mut();
        let outermost = held.is_none();
        if outermost {
            *held = Some(Vec::new());
        }
        outermost
    });
    HeldLines { outermost }
}

impl Drop for HeldLines {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        if let Some(lines) = HELD.with(|held| held.borrow_mut().take()) {
            if !lines.is_empty() {
                eprint(&lines);
            }
        }
    }
}

/// Installs `tracing` to stderr like [`mr::logging::init`], filtered by `RUST_LOG` or
/// else `default_filter`, printing above the progress bars when they are shown.
pub fn init_logging(default_filter: &str) {
    mr::logging::init_with(default_filter, || LineWriter(Vec::new()));
}

/// The running display.
pub struct Progress {
    task: JoinHandle<()>,
    view: Arc<Mutex<View>>,
    shared: Arc<Shared>,
}

impl Progress {
    /// Starts showing the progress of the job in `shared`: bars if stderr is a terminal,
    /// log lines otherwise.
    pub fn start(shared: Arc<Shared>) -> Progress {
        let view = if std::io::stderr().is_terminal() {
            View::Bars(Bars::new())
        } else {
            View::Lines(Lines::default())
        };
        let view = Arc::new(Mutex::new(view));
        let task = tokio::spawn(watch_loop(shared.clone(), view.clone()));
        Progress { task, view, shared }
    }

    /// Stops the display after drawing the final state; the bars are cleared.
    pub async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        let counts = snapshot(&self.shared);
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.update(&counts);
        view.close();
    }
}

fn snapshot(shared: &Shared) -> Counts {
    Counts::of(&shared.lock(), Instant::now())
}

/// Redraws on a clock, not on every change: with small tasks a change comes every few
/// hundred microseconds, and waking this task (and taking the job lock) for each cost the
/// coordinator more than the change itself. A change shows within [`REDRAW`].
async fn watch_loop(shared: Arc<Shared>, view: Arc<Mutex<View>>) {
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let counts = snapshot(&shared);
        view.lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(&counts);
    }
}

enum View {
    Bars(Bars),
    Lines(Lines),
}

impl View {
    fn update(&mut self, c: &Counts) {
        match self {
            View::Bars(b) => b.update(c),
            View::Lines(l) => l.update(c, Instant::now()),
        }
    }

    fn close(&mut self) {
        if let View::Bars(b) = self {
            b.close();
        }
    }
}

/// Three lines on a terminal: the map bar, the reduce bar, and workers and trouble.
struct Bars {
    all: MultiProgress,
    map: ProgressBar,
    reduce: ProgressBar,
    info: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let all = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = |prefix: &'static str| {
            let style = ProgressStyle::with_template(
                "{prefix:>7} [{bar:32.cyan/blue}] {pos:>5}/{len:<5} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            all.add(ProgressBar::new(0).with_style(style).with_prefix(prefix))
        };
        let (map, reduce) = (bar("map"), bar("reduce"));
        let info_style = ProgressStyle::with_template("        {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let info = all.add(ProgressBar::new(0).with_style(info_style));
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = Some(all.clone());
        Bars {
            all,
            map,
            reduce,
            info,
        }
    }

    fn update(&mut self, c: &Counts) {
        self.map.set_length(c.maps as u64);
        self.map.set_position(c.maps_done as u64);
        self.map.set_message(format!(
            "{} read, {}/s",
            human_bytes(c.bytes_read as f64),
            human_bytes(c.read_bytes_per_sec)
        ));
        self.reduce.set_length(c.reduces as u64);
        self.reduce.set_position(c.reduces_done as u64);
        self.info.set_message(format!(
            "{} running · {}/{} workers alive · {} reassigned · {} failed · {}",
            c.running,
            c.workers_alive,
            c.workers,
            c.reassignments,
            c.failures,
            clock(c.elapsed_secs)
        ));
    }

    fn close(&mut self) {
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = None;
        for b in [&self.map, &self.reduce, &self.info] {
            b.finish_and_clear();
        }
        let _ = self.all.clear();
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
fn clock(secs: f64) -> String {
    let s = secs as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Log lines when stderr is not a terminal: one when a phase ends, and a summary every
/// [`LINE_EVERY`] while something changes.
#[derive(Default)]
struct Lines {
    last: Option<(Counts, Instant)>,
    maps_done_told: bool,
}

impl Lines {
    fn update(&mut self, c: &Counts, now: Instant) {
        if !self.maps_done_told && c.maps > 0 && c.maps_done == c.maps {
            self.maps_done_told = true;
            info!(
                "map phase done: {} maps at {}, {} read ({}/s)",
                c.maps,
                clock(c.elapsed_secs),
                human_bytes(c.bytes_read as f64),
                human_bytes(c.read_bytes_per_sec)
            );
        }
        let moved = match &self.last {
            None => c.workers > 0,
            Some((prev, at)) => {
                now.duration_since(*at) >= LINE_EVERY
                    && Counts {
                        elapsed_secs: 0.0,
                        read_bytes_per_sec: 0.0,
                        ..*prev
                    } != Counts {
                        elapsed_secs: 0.0,
                        read_bytes_per_sec: 0.0,
                        ..*c
                    }
            }
        };
        if moved {
            info!("{}", line(c));
            self.last = Some((*c, now));
        }
    }
}

/// The summary line of the plain display.
fn line(c: &Counts) -> String {
    format!(
        "progress: map {}/{}, reduce {}/{}, {} running, {}/{} workers alive, {} reassigned, {} failed, {} read ({}/s), {}",
        c.maps_done,
        c.maps,
        c.reduces_done,
        c.reduces,
        c.running,
        c.workers_alive,
        c.workers,
        c.reassignments,
        c.failures,
        human_bytes(c.bytes_read as f64),
        human_bytes(c.read_bytes_per_sec),
        clock(c.elapsed_secs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_lines_go_out_together_when_the_outermost_guard_drops() {
        let held = || HELD.with(|h| h.borrow().clone());
        let outer = hold_lines();
        drop(LineWriter(b"one\n".to_vec()));
        {
            let _inner = hold_lines();
            drop(LineWriter(b"two\n".to_vec()));
        }
        // The inner guard did not write: both lines still wait for the outer one.
        assert_eq!(held(), Some(b"one\ntwo\n".to_vec()));
        drop(outer);
        assert_eq!(held(), None);
    }

    #[test]
    fn the_plain_line_names_every_count() {
        let c = Counts {
            maps_done: 3,
            maps: 8,
            reduces: 10,
            running: 2,
            workers_alive: 2,
            workers: 3,
            reassignments: 1,
            bytes_read: 2048,
            elapsed_secs: 65.2,
            ..Counts::default()
        };
        assert_eq!(
            line(&c),
            "progress: map 3/8, reduce 0/10, 2 running, 2/3 workers alive, 1 reassigned, 0 failed, 2.0 KiB read (0 B/s), 01:05"
        );
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn plain_lines_are_rate_limited_and_only_when_something_moved() {
        let t0 = Instant::now();
        let mut l = Lines::default();
        let mut c = Counts {
            maps: 2,
            workers: 1,
            ..Counts::default()
        };
        l.update(&c, t0);
        assert!(l.last.is_some(), "first line once a worker is there");
        c.maps_done = 1;
        l.update(&c, t0 + Duration::from_secs(1));
        assert_eq!(l.last.unwrap().1, t0, "too soon");
        c.elapsed_secs = 9.0;
        l.update(&c, t0 + LINE_EVERY);
        assert_eq!(l.last.unwrap().1, t0 + LINE_EVERY);
        c.elapsed_secs = 19.0;
        l.update(&c, t0 + LINE_EVERY * 3);
        assert_eq!(l.last.unwrap().1, t0 + LINE_EVERY, "nothing moved");
        c.maps_done = 2;
        l.update(&c, t0 + LINE_EVERY * 3);
        assert!(l.maps_done_told);
    }
}
