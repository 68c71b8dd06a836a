//! The run's clock: every line the suite prints carries the seconds since the run began and the
//! wall-clock time (UTC), so that a fault can be matched with the servers' and workloads' logs.

use std::fmt::Display;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock { start: Instant::now() }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// `[  12.3s 10:04:05.678Z]`
    pub fn stamp(&self) -> String {
        format!("[{:>6.1}s {}]", self.elapsed().as_secs_f64(), wall_clock())
    }

    /// Prints `line` with the stamp.
    pub fn say(&self, line: impl Display) {
        println!("{} {line}", self.stamp());
    }
}

/// The time of day in UTC, to the millisecond, as the servers' logs write it.
pub fn wall_clock() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = now.as_secs();
    format!("{:02}:{:02}:{:02}.{:03}Z", (s / 3600) % 24, (s / 60) % 60, s % 60, now.subsec_millis())
}

/// A duration as people read it in a report: `11.4 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
