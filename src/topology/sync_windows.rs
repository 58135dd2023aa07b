//! Sync windows: when the daemon may write to the cluster. Each window opens at every time its cron schedule
//! fires (read in its time zone) and stays open for its duration. The rules are Argo CD's: with no window,
//! writes are always allowed; with any `allow` window, only while one is active; an active `deny` window
//! refuses them, and deny wins over allow. `manualSync` lets `keelson reconcile` through a window that holds
//! writes back. Pure: the time is an argument.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use super::spec::{SyncWindowSpec, WindowKind};

/// Longest window: a year and a day (a window open for longer is a setting, not a window).
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
/// How far ahead the next opening is looked for.
const HORIZON: SignedDuration = SignedDuration::from_hours(2 * 366 * 24);
/// Window boundaries examined while looking for the next opening.
const MAX_STEPS: usize = 10_000;

/// One parsed, valid window.
#[derive(Debug, Clone)]
pub struct SyncWindow {
    /// As written.
    pub spec: SyncWindowSpec,
    cron: Cron,
    duration: SignedDuration,
    zone: TimeZone,
}

impl PartialEq for SyncWindow {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl SyncWindow {
    /// Checks every field of `spec`; each problem comes with the field it is about (`schedule`, `duration`,
    /// `timeZone`).
    pub fn parse(spec: &SyncWindowSpec) -> Result<Self, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let cron = match parse_schedule(&spec.schedule) {
            Ok(cron) => Some(cron),
            Err(message) => {
                problems.push(("schedule", message));
                None
            }
        };
        let duration = match parse_duration(&spec.duration) {
            Ok(duration) => Some(duration),
            Err(message) => {
                problems.push(("duration", message));
                None
            }
        };
        let zone = match spec.time_zone.as_deref() {
            None => Some(TimeZone::UTC),
            Some(name) => match TimeZone::get(name) {
                Ok(zone) => Some(zone),
                Err(_) => {
                    problems.push((
                        "timeZone",
                        format!("`{name}` is not an IANA time zone (e.g. `UTC`, `Europe/Berlin`)"),
                    ));
                    None
                }
            },
        };
        match (cron, duration, zone) {
            (Some(cron), Some(duration), Some(zone)) if problems.is_empty() => Ok(Self {
                spec: spec.clone(),
                cron,
                duration,
                zone,
            }),
            _ => Err(problems),
        }
    }

    /// A window given on the command line, as a YAML mapping with the fields of `spec.syncWindows[]`
    /// (`{kind: deny, schedule: "0 22 * * 5", duration: 60h, timeZone: Europe/Berlin}`).
    pub fn parse_flag(text: &str) -> Result<Self, String> {
        let spec: SyncWindowSpec =
            serde_yaml::from_str(text).map_err(|e| format!("sync window {text:?}: {e}"))?;
        Self::parse(&spec).map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            format!("sync window {text:?}: {}", problems.join("; "))
        })
    }

    pub fn kind(&self) -> WindowKind {
        self.spec.kind
    }

    /// When the occurrence active at `at` ends; `None` when the window is not active at `at`.
    fn active_until(&self, at: Timestamp) -> Option<Timestamp> {
        let here = whole_second(at).to_zoned(self.zone.clone());
        let start = self.cron.find_previous_occurrence(&here, true).ok()?;
        let end = start.timestamp().checked_add(self.duration).ok()?;
        (at < end).then_some(end)
    }

    /// The first start strictly after `at`.
    fn next_start(&self, at: Timestamp) -> Option<Timestamp> {
        let here = whole_second(at).to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&here, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }
}

impl fmt::Display for SyncWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.spec.kind {
            WindowKind::Allow => "allow",
            WindowKind::Deny => "deny",
        };
        let zone = self.spec.time_zone.as_deref().unwrap_or("UTC");
        write!(
            f,
            "{kind} window \"{}\" for {} ({zone})",
            self.spec.schedule, self.spec.duration
        )
    }
}

/// Why writes are held back now, and when they may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The windows that hold writes back (`deny window "0 22 * * 5" for 60h (UTC) until ...`, or that no
    /// allow window is active).
    pub because: String,
    /// `keelson reconcile` (without `--force`) may apply now.
    pub manual_sync: bool,
    /// When writes are next allowed; `None` when no window opens within two years.
    pub opens: Option<Timestamp>,
}

impl Closed {
    /// `Tue 2026-12-08 02:00 UTC`, or that no window opens soon.
    pub fn opens_text(&self) -> String {
        match self.opens {
            Some(at) => format!("window opens {}", at.strftime("%a %Y-%m-%d %H:%M UTC")),
            None => "no window opens within two years".to_string(),
        }
    }
}

/// The windows that govern a pass: the daemon's own (flags) and the revision's `spec.syncWindows`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncWindows(pub Vec<SyncWindow>);

impl SyncWindows {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both sets together.
    pub fn merged(&self, other: &SyncWindows) -> SyncWindows {
        SyncWindows(self.0.iter().chain(&other.0).cloned().collect())
    }

    /// `Ok` when writes are allowed at `at`.
    pub fn check(&self, at: Timestamp) -> Result<(), Closed> {
        let denying: Vec<(&SyncWindow, Timestamp)> = self
            .of_kind(WindowKind::Deny)
            .filter_map(|w| w.active_until(at).map(|end| (w, end)))
            .collect();
        let allows: Vec<&SyncWindow> = self.of_kind(WindowKind::Allow).collect();
        let allow_active = allows.iter().any(|w| w.active_until(at).is_some());
        let (because, manual_sync) = if !denying.is_empty() {
            let because: Vec<String> = denying
                .iter()
                .map(|(w, end)| format!("{w} is active until {}", end.strftime("%a %Y-%m-%d %H:%M UTC")))
                .collect();
            (
                because.join("; "),
                denying.iter().all(|(w, _)| w.spec.manual_sync),
            )
        } else if !allows.is_empty() && !allow_active {
            let names: Vec<String> = allows.iter().map(|w| w.to_string()).collect();
            (
                format!("outside every allow window ({})", names.join("; ")),
                allows.iter().any(|w| w.spec.manual_sync),
            )
        } else {
            return Ok(());
        };
        Err(Closed {
            because,
            manual_sync,
            opens: self.next_open(at),
        })
    }

    fn of_kind(&self, kind: WindowKind) -> impl Iterator<Item = &SyncWindow> {
        self.0.iter().filter(move |w| w.kind() == kind)
    }

    fn allowed(&self, at: Timestamp) -> bool {
        let denied = self
            .of_kind(WindowKind::Deny)
            .any(|w| w.active_until(at).is_some());
        let mut allows = self.of_kind(WindowKind::Allow).peekable();
        let outside_allows = allows.peek().is_some() && !allows.any(|w| w.active_until(at).is_some());
        !denied && !outside_allows
    }

    /// The first instant at or after `at` when writes are allowed. They can only become allowed when an
    /// active deny window ends or an allow window starts, so those instants are visited in order.
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        let horizon = at.checked_add(HORIZON).ok()?;
        let mut t = at;
        for _ in 0..MAX_STEPS {
            if self.allowed(t) {
                return Some(t);
            }
            let deny_ends = self.of_kind(WindowKind::Deny).filter_map(|w| w.active_until(t));
            let allow_starts = self.of_kind(WindowKind::Allow).filter_map(|w| w.next_start(t));
            let next = deny_ends.chain(allow_starts).filter(|&n| n > t).min()?;
            if next > horizon {
                return None;
            }
            t = next;
        }
        None
    }
}

fn whole_second(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

fn parse_schedule(text: &str) -> Result<Cron, String> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(text).map_err(|e| {
        format!("`{text}` is not a cron schedule (`minute hour day-of-month month day-of-week`, e.g. `0 2 * * 2`): {e}")
    })?;
    // A schedule that never fires (`0 0 30 2 *`) would make a window that never opens.
    let reference = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
    cron.find_next_occurrence(&reference, false)
        .map_err(|_| format!("`{text}` never fires"))?;
    Ok(cron)
}

fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration (e.g. `30m`, `2h`, `60h`): {e}"))?;
    if duration.is_zero() {
        return Err(format!("duration `{text}` must be greater than zero"));
    }
    if duration > MAX_DURATION {
        return Err(format!("duration `{text}` is longer than a year and a day"));
    }
    SignedDuration::try_from(duration).map_err(|e| format!("duration `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(
        kind: WindowKind,
        schedule: &str,
        duration: &str,
        zone: Option<&str>,
        manual: bool,
    ) -> SyncWindow {
        SyncWindow::parse(&SyncWindowSpec {
            kind,
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: zone.map(str::to_string),
            manual_sync: manual,
        })
        .expect("valid window")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    // 2026-12-01 is a Tuesday.
    #[test]
    fn without_windows_writes_are_always_allowed() {
        assert_eq!(SyncWindows::default().check(at("2026-12-01T12:00:00Z")), Ok(()));
    }

    #[test]
    fn an_allow_window_opens_at_its_schedule_for_its_duration() {
        let windows = SyncWindows(vec![window(WindowKind::Allow, "0 2 * * 2", "2h", None, false)]);
        let rows = [
            ("2026-12-01T01:59:59Z", false),
            ("2026-12-01T02:00:00Z", true),
            ("2026-12-01T03:59:59Z", true),
            ("2026-12-01T04:00:00Z", false),
            ("2026-12-02T02:30:00Z", false),
        ];
        for (time, open) in rows {
            assert_eq!(windows.check(at(time)).is_ok(), open, "{time}");
        }
        let closed = windows.check(at("2026-12-01T12:00:00Z")).unwrap_err();
        assert_eq!(closed.opens, Some(at("2026-12-08T02:00:00Z")));
        assert_eq!(closed.opens_text(), "window opens Tue 2026-12-08 02:00 UTC");
        assert!(
            closed.because.contains("outside every allow window"),
            "{}",
            closed.because
        );
        assert!(!closed.manual_sync);
    }

    #[test]
    fn deny_wins_over_allow_and_the_opening_waits_for_the_deny_to_end() {
        let windows = SyncWindows(vec![
            window(WindowKind::Allow, "0 0 * * *", "24h", None, false),
            window(WindowKind::Deny, "0 22 * * 5", "60h", None, true),
        ]);
        // Friday 2026-12-04 23:00 is inside the weekend freeze, which ends Monday 10:00.
        let closed = windows.check(at("2026-12-04T23:00:00Z")).unwrap_err();
        assert_eq!(closed.opens, Some(at("2026-12-07T10:00:00Z")));
        assert!(closed.manual_sync, "every active deny window allows manual sync");
        assert!(
            closed
                .because
                .starts_with("deny window \"0 22 * * 5\" for 60h (UTC) is active until")
        );
        assert_eq!(windows.check(at("2026-12-07T10:00:00Z")), Ok(()));
    }

    #[test]
    fn manual_sync_needs_every_active_deny_window_to_allow_it() {
        let windows = SyncWindows(vec![
            window(WindowKind::Deny, "0 * * * *", "30m", None, true),
            window(WindowKind::Deny, "0 0 * * *", "1h", None, false),
        ]);
        assert!(!windows.check(at("2026-12-01T00:10:00Z")).unwrap_err().manual_sync);
        assert!(windows.check(at("2026-12-01T05:10:00Z")).unwrap_err().manual_sync);
        assert_eq!(windows.check(at("2026-12-01T05:40:00Z")), Ok(()));
    }

    #[test]
    fn schedules_are_read_in_their_time_zone_across_daylight_saving() {
        // 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
        let windows = SyncWindows(vec![window(
            WindowKind::Allow,
            "0 2 * * *",
            "1h",
            Some("Europe/Berlin"),
            false,
        )]);
        assert!(windows.check(at("2026-12-01T01:30:00Z")).is_ok());
        assert!(windows.check(at("2026-12-01T00:30:00Z")).is_err());
        assert!(windows.check(at("2026-07-01T00:30:00Z")).is_ok());
        let closed = windows.check(at("2026-07-01T12:00:00Z")).unwrap_err();
        assert_eq!(closed.opens, Some(at("2026-07-02T00:00:00Z")));
    }

    #[test]
    fn a_deny_window_longer_than_its_period_never_opens() {
        let windows = SyncWindows(vec![window(WindowKind::Deny, "@daily", "25h", None, false)]);
        let closed = windows.check(at("2026-12-01T12:00:00Z")).unwrap_err();
        assert_eq!(closed.opens, None);
        assert_eq!(closed.opens_text(), "no window opens within two years");
    }

    #[test]
    fn bad_fields_are_each_named() {
        let rows: [(&str, &str, Option<&str>, &[&str]); 6] = [
            ("61 * * * *", "1h", None, &["schedule"]),
            ("0 2 * *", "1h", None, &["schedule"]),
            ("0 0 30 2 *", "1h", None, &["schedule"]),
            ("0 2 * * *", "0s", None, &["duration"]),
            (
                "0 2 * * *",
                "forever",
                Some("Mars/Olympus"),
                &["duration", "timeZone"],
            ),
            ("0 2 * * * *", "400days", None, &["schedule", "duration"]),
        ];
        for (schedule, duration, zone, fields) in rows {
            let spec = SyncWindowSpec {
                kind: WindowKind::Deny,
                schedule: schedule.into(),
                duration: duration.into(),
                time_zone: zone.map(str::to_string),
                manual_sync: false,
            };
            let problems = SyncWindow::parse(&spec).unwrap_err();
            let named: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
            assert_eq!(named, fields, "{schedule} {duration} {zone:?}: {problems:?}");
        }
    }

    #[test]
    fn a_flag_uses_the_same_fields() {
        let w = SyncWindow::parse_flag("{kind: deny, schedule: '0 22 * * 5', duration: 60h, timeZone: UTC}")
            .expect("valid");
        assert_eq!(w.kind(), WindowKind::Deny);
        let error = SyncWindow::parse_flag("{kind: deny, schedule: '0 22 * * 5', duration: 60h, zone: UTC}")
            .unwrap_err();
        assert!(error.contains("unknown field `zone`"), "{error}");
        let error = SyncWindow::parse_flag("{kind: allow, schedule: 'x', duration: 1h}").unwrap_err();
        assert!(error.contains("schedule: `x` is not a cron schedule"), "{error}");
    }
}
