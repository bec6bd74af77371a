//! Progress as people read it: on a terminal, a bar with bytes done, rate
//! and time left (indicatif); otherwise (a pipe, a CI log) a line per stage
//! now and then: `pull: 120.0 MiB of 1.2 GiB (10 %), 256.0 KiB/s, about
//! 1h12m left`, at most every tenth of the stage or every 30 s, plus a line
//! when it starts and when it ends. Rates are averaged over the last
//! [`WINDOW`], so a link that stalls or bursts does not swing the estimate.
//! Nothing with `--json` (stdout stays pure JSON, stderr quiet).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tender_bundle::Progress;

use crate::human;

/// The span a rate is averaged over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often a sample of the bytes done is kept.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A log line at least this often while a stage runs.
const LINE_EVERY: Duration = Duration::from_secs(30);
/// ... and otherwise once another tenth of the stage is done, no sooner
/// than this after the last line.
const LINE_AT_MOST: Duration = Duration::from_secs(1);

/// A progress bar on stderr, or lines when stderr is not a terminal, or
/// nothing with `--json`.
pub struct Bar(ProgressBar, Lines);

enum Lines {
    Bar,
    Log(Mutex<Log>),
    Quiet,
}

impl Bar {
    /// A bar, or lines unless stderr is a terminal; nothing when `json`.
    pub fn new(json: bool) -> Bar {
        if json {
            return Bar(ProgressBar::hidden(), Lines::Quiet);
        }
        if !std::io::stderr().is_terminal() {
            return Bar(ProgressBar::hidden(), Lines::Log(Mutex::new(Log::default())));
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} {eta:>4} left {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Bar(bar, Lines::Bar)
    }

    fn log(&self, f: impl FnOnce(&mut Log, Instant) -> Option<String>) {
        if let Lines::Log(log) = &self.1 {
            let line = f(&mut log.lock().expect("progress lines"), Instant::now());
            if let Some(line) = line {
                eprintln!("{line}");
            }
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        self.0.reset();
        self.0.set_prefix(phase.to_owned());
        self.0.set_length(total);
        self.log(|l, now| l.start(phase, total, now));
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
        self.log(|l, now| l.advance(n, now));
    }
    fn skip(&self, n: u64) {
        self.0.inc(n);
        self.0.reset_eta();
        self.log(|l, _| {
            l.skip(n);
            None
        });
    }
    fn item(&self, name: &str) {
        let short: String = name.chars().take(24).collect();
        self.0.set_message(short);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
        self.log(|l, now| l.finish(now));
    }
    fn note(&self, line: &str) {
        match &self.1 {
            Lines::Bar => self.0.set_message(line.to_owned()),
            Lines::Log(log) => {
                let mut log = log.lock().expect("progress lines");
                if log.last_note != line {
                    eprintln!("{line}");
                    line.clone_into(&mut log.last_note);
                }
            }
            Lines::Quiet => {}
        }
    }
}

/// Bytes done over the recent past: the rate averaged over [`WINDOW`].
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Start over at `now` with `done` bytes.
    pub fn reset(&mut self, now: Instant, done: u64) {
        self.samples.clear();
        self.samples.push_back((now, done));
    }

    /// `done` bytes at `now` (kept once a `SAMPLE_EVERY`).
    pub fn sample(&mut self, now: Instant, done: u64) {
        match self.samples.back() {
            Some(&(t, _)) if now.duration_since(t) < SAMPLE_EVERY => {}
            _ => self.samples.push_back((now, done)),
        }
        // The oldest kept is the last at least WINDOW back.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
    }

    /// Bytes per second from the oldest sample to `done` at `now`; None
    /// before a second has passed.
    pub fn per_second(&self, now: Instant, done: u64) -> Option<f64> {
        let &(t, d) = self.samples.front()?;
        let span = now.duration_since(t).as_secs_f64();
        (span >= 1.0).then(|| done.saturating_sub(d) as f64 / span)
    }

    /// Bytes done before the window started are none of its business.
    fn shift(&mut self, n: u64) {
        for s in &mut self.samples {
            s.1 += n;
        }
    }
}

/// One stage's lines for a log.
#[derive(Debug, Default)]
struct Log {
    phase: String,
    total: u64,
    done: u64,
    started: Option<Instant>,
    /// Bytes done before this run (a resumed pull): not in the rate.
    skipped: u64,
    rate: Rate,
    last_line: Option<Instant>,
    last_tenth: u64,
    last_note: String,
}

impl Log {
    fn start(&mut self, phase: &str, total: u64, now: Instant) -> Option<String> {
        *self = Log { last_note: std::mem::take(&mut self.last_note), ..Log::default() };
        phase.clone_into(&mut self.phase);
        self.total = total;
        self.started = Some(now);
        self.last_line = Some(now);
        self.rate.reset(now, 0);
        (total > 0).then(|| format!("{phase}: {} to go", human(total)))
    }

    fn skip(&mut self, n: u64) {
        self.done += n;
        self.skipped += n;
        self.rate.shift(n);
        self.last_tenth = self.tenth();
    }

    fn tenth(&self) -> u64 {
        (self.done * 10).checked_div(self.total).unwrap_or(0)
    }

    fn advance(&mut self, n: u64, now: Instant) -> Option<String> {
        self.started?;
        self.done += n;
        self.rate.sample(now, self.done);
        if self.total == 0 || self.done >= self.total {
            return None;
        }
        let since = now.duration_since(self.last_line.unwrap_or(now));
        let tenth = self.tenth();
        if since < LINE_EVERY && (tenth == self.last_tenth || since < LINE_AT_MOST) {
            return None;
        }
        self.last_line = Some(now);
        self.last_tenth = tenth;
        Some(self.line(now))
    }

    /// `pull: 120.0 MiB of 1.2 GiB (10 %), 256.0 KiB/s, about 1h12m left`
    fn line(&self, now: Instant) -> String {
        let mut out = format!(
            "{}: {} of {} ({} %)",
            self.phase,
            human(self.done),
            human(self.total),
            self.done * 100 / self.total.max(1)
        );
        if let Some(rate) = self.rate.per_second(now, self.done) {
            out.push_str(&format!(", {}/s", human(rate as u64)));
            if rate >= 1.0 {
                let left = (self.total.saturating_sub(self.done)) as f64 / rate;
                out.push_str(&format!(", about {} left", duration(left)));
            }
        }
        out
    }

    fn finish(&mut self, now: Instant) -> Option<String> {
        let started = self.started.take()?;
        if self.total == 0 {
            return None;
        }
        let secs = now.duration_since(started).as_secs_f64();
        let moved = self.done - self.skipped;
        let (done, total) = (human(self.done), human(self.total));
        let mut out = if self.done < self.total {
            // Failed or stopped: the bytes it got to, not "done".
            format!("{}: stopped at {done} of {total} after {}", self.phase, duration(secs))
        } else {
            format!("{}: {done} of {total} in {}", self.phase, duration(secs))
        };
        if secs >= 0.1 {
            out.push_str(&format!(", {}/s", human((moved as f64 / secs) as u64)));
        }
        Some(out)
    }
}

/// A span of seconds as people say it: `45s`, `3m20s`, `1h12m`, `2d4h`.
pub fn duration(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    match s {
        0..60 => format!("{}s", secs.max(0.0).ceil() as u64),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0.2), "1s");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(200.0), "3m20s");
        assert_eq!(duration(4320.0), "1h12m");
        assert_eq!(duration(187_200.0), "2d4h");
    }

    /// A satellite link at 256 KiB/s that stalls for 10 s every minute:
    /// the estimate is the average over the window, not the last burst.
    #[test]
    fn a_stalling_link_shows_its_average_rate_and_an_honest_eta() {
        let t0 = Instant::now();
        let mut log = Log::default();
        let total = 1200 << 20;
        assert_eq!(log.start("pull", total, t0).unwrap(), "pull: 1.2 GiB to go");
        log.skip(120 << 20); // resumed: done before, not part of the rate
        let mut lines = vec![];
        let mut done_at = t0;
        // 48 s at 320 KiB/s, then 12 s with nothing: 256 KiB/s on average.
        for second in 1..=600u64 {
            let now = t0 + Duration::from_secs(second);
            let n = if (1..=48).contains(&(second % 60)) { 320 << 10 } else { 0 };
            if n > 0 {
                lines.extend(log.advance(n, now));
                done_at = now;
            }
        }
        assert!(lines.len() >= 15 && lines.len() <= 21, "every 30 s: {lines:#?}");
        let last = lines.last().unwrap();
        let rate = log.rate.per_second(done_at, log.done).unwrap();
        assert!((240.0 * 1024.0..275.0 * 1024.0).contains(&rate), "{rate}: {last}");
        let left = (total - log.done) as f64 / rate;
        assert!(last.contains(&format!("about {} left", duration(left))), "{last}");
        assert!(last.starts_with("pull: ") && last.contains("MiB of 1.2 GiB"), "{last}");
        let end = log.finish(done_at).unwrap();
        assert!(end.starts_with("pull: stopped at ") && end.contains(" after 9m"), "{end}");
    }

    #[test]
    fn a_fast_stage_logs_a_line_a_tenth_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut log = Log::default();
        log.start("import", 1000, t0);
        let mut lines = vec![];
        for ms in 1..=1000u64 {
            lines.extend(log.advance(1, t0 + Duration::from_millis(ms * 3)));
        }
        // 3 s: a line at 1 s and 2 s (tenths crossed), none at the end.
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("import: ") && lines[0].contains("B/s, about"), "{lines:?}");
        assert!(log.finish(t0 + Duration::from_secs(3)).unwrap().contains(" in 3s"));
        // A stage without bytes has no lines of its own.
        assert_eq!(log.start("apply", 0, t0), None);
        assert_eq!(log.advance(5, t0 + Duration::from_secs(40)), None);
        assert_eq!(log.finish(t0 + Duration::from_secs(41)), None);
    }
}
