//! When a schedule is due: its cron expression read in its time zone
//! (croner, which handles daylight-saving gaps and folds, and chrono-tz),
//! the next due time after a fire, and what a due time missed while no
//! server ran becomes ([`Misfire`]).
//!
//! Must not: read or write the store.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

/// What a due time that passed while no server ran becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Fire once for the missed time(s), as soon as a server runs.
    #[default]
    CatchUpOnce,
    /// Record the missed time as skipped and wait for the next one.
    Skip,
}

impl Misfire {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CatchUpOnce => "catch_up_once",
            Self::Skip => "skip",
        }
    }

    pub fn stored(value: &str) -> Self {
        if value == "skip" { Self::Skip } else { Self::CatchUpOnce }
    }
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    zone: Tz,
}

/// How far ahead a due time is looked for (an expression such as
/// `0 0 30 2 *` never matches; croner gives up on it after this long too).
const SEARCH_YEARS: i32 = 5;

impl Timing {
    /// Parse `expression` (5 fields, or 6 with seconds first; `@daily` and
    /// the like) in `zone` (an IANA name).
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        let zone = Tz::from_str(zone).map_err(|_| format!("unknown time zone '{zone}' (use an IANA name such as UTC or Europe/Paris)"))?;
        let cron = Cron::from_str(expression).map_err(|e| format!("invalid cron expression '{expression}': {e}"))?;
        Ok(Self { cron, zone })
    }

    /// The first due time strictly after `after_ms`, if there is one within [`SEARCH_YEARS`].
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = self.zone.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let limit = start + chrono::Duration::days(366 * i64::from(SEARCH_YEARS));
        (next <= limit).then(|| next.timestamp_millis())
    }

    /// The last due time at or before `at_ms`.
    pub fn last_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let start = self.zone.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(at_ms)?.naive_utc());
        self.cron.find_previous_occurrence(&start, true).ok().map(|at| at.timestamp_millis())
    }

    /// The shortest gap between the next `count` due times after `after_ms` (ms).
    pub fn shortest_gap_ms(&self, after_ms: i64, count: usize) -> Option<i64> {
        let mut previous = self.next_after(after_ms)?;
        let mut shortest: Option<i64> = None;
        for _ in 0..count {
            let Some(next) = self.next_after(previous) else { break };
            shortest = Some(shortest.map_or(next - previous, |s: i64| s.min(next - previous)));
            previous = next;
        }
        shortest
    }

    /// The expression in words (croner's English description).
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// What a poll does with a schedule found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The due time this fire records.
    pub due_ms: i64,
    /// `cron` (on time), `catch_up` (late, fired once) or `skip` (late, recorded as skipped).
    pub trigger: &'static str,
    /// The schedule's next due time after this one.
    pub next_ms: Option<i64>,
}

/// Plan the fire of a schedule whose next due time is `due_ms`, polled at
/// `now_ms`: on time within `grace_ms`; later than that it was missed
/// while no server ran, and `misfire` decides. The next due time is at
/// least `min_interval_ms` after the one fired.
pub fn plan(timing: &Timing, due_ms: i64, now_ms: i64, grace_ms: i64, min_interval_ms: i64, misfire: Misfire) -> Plan {
    let late = now_ms - due_ms > grace_ms;
    let (due_ms, trigger) = match (late, misfire) {
        (false, _) => (due_ms, "cron"),
        (true, Misfire::CatchUpOnce) => (timing.last_at_or_before(now_ms).unwrap_or(due_ms).max(due_ms), "catch_up"),
        (true, Misfire::Skip) => (due_ms, "skip"),
    };
    let next_ms = timing.next_after(now_ms.max(due_ms + min_interval_ms - 1));
    Plan { due_ms, trigger, next_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    #[test]
    fn a_daily_time_is_read_in_its_zone_across_a_daylight_saving_change() {
        let nine_in_paris = Timing::parse("0 9 * * *", "Europe/Paris").unwrap();
        // Winter: UTC+1. Summer (after 2027-03-28): UTC+2.
        assert_eq!(nine_in_paris.next_after(at("2027-03-27T12:00:00Z")), Some(at("2027-03-28T07:00:00Z")));
        assert_eq!(nine_in_paris.next_after(at("2027-03-26T12:00:00Z")), Some(at("2027-03-27T08:00:00Z")));
    }

    #[test]
    fn seconds_nicknames_and_bad_input() {
        let every_ten = Timing::parse("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(every_ten.next_after(at("2027-01-01T00:00:03Z")), Some(at("2027-01-01T00:00:10Z")));
        assert_eq!(every_ten.shortest_gap_ms(at("2027-01-01T00:00:00Z"), 20), Some(10_000));
        assert_eq!(Timing::parse("@daily", "UTC").unwrap().next_after(at("2027-01-01T10:00:00Z")), Some(at("2027-01-02T00:00:00Z")));
        assert!(Timing::parse("61 * * * *", "UTC").unwrap_err().contains("invalid cron expression"));
        assert!(Timing::parse("0 9 * * *", "Mars/Olympus").unwrap_err().contains("unknown time zone"));
        assert_eq!(Timing::parse("0 0 30 2 *", "UTC").unwrap().next_after(at("2027-01-01T00:00:00Z")), None);
    }

    #[test]
    fn on_time_fires_the_due_time_and_moves_on() {
        let hourly = Timing::parse("0 * * * *", "UTC").unwrap();
        let due = at("2027-01-01T10:00:00Z");
        let p = plan(&hourly, due, due + 500, 60_000, 60_000, Misfire::Skip);
        assert_eq!(p, Plan { due_ms: due, trigger: "cron", next_ms: Some(at("2027-01-01T11:00:00Z")) });
    }

    #[test]
    fn a_late_fire_follows_the_misfire_policy() {
        let hourly = Timing::parse("0 * * * *", "UTC").unwrap();
        let due = at("2027-01-01T10:00:00Z");
        let now = at("2027-01-01T13:20:00Z");
        let caught_up = plan(&hourly, due, now, 60_000, 60_000, Misfire::CatchUpOnce);
        assert_eq!(caught_up, Plan { due_ms: at("2027-01-01T13:00:00Z"), trigger: "catch_up", next_ms: Some(at("2027-01-01T14:00:00Z")) });
        let skipped = plan(&hourly, due, now, 60_000, 60_000, Misfire::Skip);
        assert_eq!(skipped, Plan { due_ms: due, trigger: "skip", next_ms: Some(at("2027-01-01T14:00:00Z")) });
    }

    #[test]
    fn the_next_time_keeps_the_minimum_interval() {
        let every_second = Timing::parse("* * * * * *", "UTC").unwrap();
        let due = at("2027-01-01T10:00:00Z");
        assert_eq!(plan(&every_second, due, due, 1000, 60_000, Misfire::Skip).next_ms, Some(at("2027-01-01T10:01:00Z")));
    }
}
