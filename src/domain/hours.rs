//! Business hours and reply deadlines (spec/api.md "Business hours and deadlines").
//!
//! A [`Schedule`] is either the always-running clock (no `[hours]` table: a deadline is
//! receipt + 2 hours) or a weekly timetable in one IANA time zone, with holidays. The clock
//! runs only inside the timetable's ranges, which are local wall-clock times, half-open
//! `[start, end)`, and counts real elapsed time: a range that a DST gap shortens is shorter,
//! and a repeated hour counts twice. Everything here is pure: instants in, instants out.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeSet;

/// The deadline without business hours: two hours.
pub const DEFAULT_REPLY_WITHIN_MINUTES: u32 = 120;
/// `at_risk` this long before the deadline, by default.
pub const DEFAULT_AT_RISK_MINUTES: u32 = 30;

/// The days of the week in the settings' order and spelling.
pub const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// A local range of one day, in minutes after midnight: `[start, end)`, `end` ≤ 1440.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub start: u16,
    pub end: u16,
}

impl Range {
    fn show(m: u16) -> String {
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    /// `["09:00", "18:00"]`, as `GET /hours` shows it.
    pub fn shown(&self) -> [String; 2] {
        [Self::show(self.start), Self::show(self.end)]
    }
}

/// A timetable that cannot be used; `key` names the setting (`hours.week.tue`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {key}: {message}")]
pub struct HoursError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> HoursError {
    HoursError {
        key: key.into(),
        message: message.into(),
    }
}

/// Parses `HH:MM` (00:00 to 23:59, and 24:00 when `end`), in minutes after midnight.
fn parse_time(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Parses `"09:00-18:00"`. Errors name `key`.
pub fn parse_range(s: &str, key: &str) -> Result<Range, HoursError> {
    let bad = || {
        err(
            key,
            format!(
                "{s:?} is not a range of local times such as \"09:00-18:00\" (24:00 may end one)"
            ),
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start = parse_time(a, false).ok_or_else(bad)?;
    let end = parse_time(b, true).ok_or_else(bad)?;
    if start >= end {
        return Err(err(
            key,
            format!("{s:?} ends before it starts (a night shift is two ranges on two days)"),
        ));
    }
    Ok(Range { start, end })
}

/// A weekly timetable in one time zone, with holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub zone: Tz,
    /// Indexed by `Weekday::num_days_from_monday`; sorted, not overlapping.
    pub week: [Vec<Range>; 7],
    pub holidays: BTreeSet<NaiveDate>,
    pub reply_within_minutes: u32,
    pub at_risk_minutes: u32,
}

/// The raw `[hours]` table, as read from the settings file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoursInput {
    pub time_zone: Option<String>,
    pub reply_within_minutes: Option<i64>,
    pub at_risk_minutes: Option<i64>,
    pub holidays: Vec<String>,
    /// (day key as written, its ranges as written).
    pub week: Vec<(String, Vec<String>)>,
}

impl BusinessHours {
    /// Validates the `[hours]` table. Errors name the key: an unknown zone, a bad date, a
    /// bad, inverted or overlapping range (touching ones are fine), a week with no range.
    pub fn from_input(input: &HoursInput) -> Result<BusinessHours, HoursError> {
        let zone_name = input.time_zone.as_deref().ok_or_else(|| {
            err(
                "hours.time_zone",
                "is missing (an IANA name such as \"Europe/Lisbon\")",
            )
        })?;
        let zone: Tz = zone_name.parse().map_err(|_| {
            err(
                "hours.time_zone",
                format!("{zone_name:?} is not an IANA time zone (such as \"Europe/Lisbon\")"),
            )
        })?;
        let minutes = |key: &str, v: Option<i64>, default: u32| -> Result<u32, HoursError> {
            match v {
                None => Ok(default),
                Some(n) if (1..=60 * 24 * 366).contains(&n) => Ok(n as u32),
                Some(n) => Err(err(
                    key,
                    format!("{n} is not a number of minutes between 1 and 527040"),
                )),
            }
        };
        let reply_within_minutes = minutes(
            "hours.reply_within_minutes",
            input.reply_within_minutes,
            DEFAULT_REPLY_WITHIN_MINUTES,
        )?;
        let at_risk_minutes = match input.at_risk_minutes {
            Some(0) => 0,
            other => minutes("hours.at_risk_minutes", other, DEFAULT_AT_RISK_MINUTES)?,
        };
        let mut holidays = BTreeSet::new();
        for (i, h) in input.holidays.iter().enumerate() {
            let day = NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d").map_err(|_| {
                err(
                    format!("hours.holidays[{i}]"),
                    format!("{h:?} is not a date such as \"2026-12-25\""),
                )
            })?;
            holidays.insert(day);
        }
        let mut week: [Vec<Range>; 7] = Default::default();
        for (day, ranges) in &input.week {
            let key = format!("hours.week.{day}");
            let (_, weekday) = DAYS
                .iter()
                .find(|(name, _)| name == day)
                .ok_or_else(|| err(&key, "is not a day (mon, tue, wed, thu, fri, sat, sun)"))?;
            let mut parsed = ranges
                .iter()
                .enumerate()
                .map(|(i, r)| parse_range(r, &format!("{key}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            parsed.sort();
            for pair in parsed.windows(2) {
                if pair[1].start < pair[0].end {
                    return Err(err(
                        &key,
                        format!(
                            "the ranges {}-{} and {}-{} overlap",
                            Range::show(pair[0].start),
                            Range::show(pair[0].end),
                            Range::show(pair[1].start),
                            Range::show(pair[1].end)
                        ),
                    ));
                }
            }
            week[weekday.num_days_from_monday() as usize] = parsed;
        }
        if week.iter().all(Vec::is_empty) {
            return Err(err(
                "hours.week",
                "has no range: the team would never be online",
            ));
        }
        Ok(BusinessHours {
            zone,
            week,
            holidays,
            reply_within_minutes,
            at_risk_minutes,
        })
    }

    /// The instant of local `t` on this zone's clock: the earlier of a repeated time when
    /// `start` (so a range starting in a repeated hour counts it twice), the later when it
    /// ends one; a time that a DST gap skips is the moment the gap ends.
    fn instant(&self, t: NaiveDateTime, start: bool) -> DateTime<Utc> {
        match self.zone.from_local_datetime(&t) {
            LocalResult::Single(x) => x.to_utc(),
            LocalResult::Ambiguous(a, b) => {
                if start {
                    a.min(b).to_utc()
                } else {
                    a.max(b).to_utc()
                }
            }
            LocalResult::None => {
                // `t` is on a whole minute, and gaps begin and end on whole minutes; none
                // lasts a day.
                let mut probe = t;
                for _ in 0..(24 * 60) {
                    probe += Duration::minutes(1);
                    if let Some(x) = self.zone.from_local_datetime(&probe).earliest() {
                        return x.to_utc();
                    }
                }
                t.and_utc()
            }
        }
    }

    /// The open intervals of local date `d`, as instants, in order (none on a holiday).
    fn intervals_on(&self, d: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&d) {
            return Vec::new();
        }
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.week[d.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|r| {
                let s = self.instant(midnight + Duration::minutes(r.start.into()), true);
                let e = self.instant(midnight + Duration::minutes(r.end.into()), false);
                (s, e)
            })
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// Open intervals from the local day before `from`'s onwards, touching ones merged, for
    /// up to ten years (a timetable with a range always has one within a week, unless the
    /// holidays cover years).
    fn intervals_from(
        &self,
        from: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let first = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let mut pending: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        let mut days = (0..3660).filter_map(move |i| first.checked_add_signed(Duration::days(i)));
        let mut queue: std::collections::VecDeque<(DateTime<Utc>, DateTime<Utc>)> =
            Default::default();
        std::iter::from_fn(move || loop {
            if queue.is_empty() {
                match days.next() {
                    Some(d) => queue.extend(self.intervals_on(d)),
                    None => return pending.take(),
                }
                continue;
            }
            let next = queue.pop_front()?;
            match pending {
                Some((s, e)) if next.0 <= e => pending = Some((s, e.max(next.1))),
                Some(done) => {
                    pending = Some(next);
                    return Some(done);
                }
                None => pending = Some(next),
            }
        })
    }

    /// The instant `minutes` business minutes after `from`.
    fn after(&self, from: DateTime<Utc>, minutes: u32) -> DateTime<Utc> {
        let mut left = Duration::minutes(minutes.into());
        if left.is_zero() {
            return from;
        }
        for (s, e) in self.intervals_from(from) {
            if e <= from {
                continue;
            }
            let start = s.max(from);
            let open = e - start;
            if left <= open {
                return start + left;
            }
            left -= open;
        }
        // Only holidays for ten years: as good as never.
        super::time::latest()
    }

    fn online_at(&self, t: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
        for (s, e) in self.intervals_from(t) {
            if e <= t {
                continue;
            }
            return if s <= t {
                (true, Some(e))
            } else {
                (false, Some(s))
            };
        }
        (false, None)
    }
}

/// The service's clock of business time.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// No `[hours]` table: the clock always runs.
    Always,
    Hours(Box<BusinessHours>),
}

/// Where a message stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    OnTime,
    AtRisk,
    Breached,
}

impl Deadline {
    /// At `t`, for a message due at `due_at` that is at risk from `at_risk_at`: breached
    /// after the deadline, at risk from its warning time.
    pub fn at(t: DateTime<Utc>, at_risk_at: DateTime<Utc>, due_at: DateTime<Utc>) -> Deadline {
        if t > due_at {
            Deadline::Breached
        } else if t >= at_risk_at {
            Deadline::AtRisk
        } else {
            Deadline::OnTime
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::OnTime => "on_time",
            Deadline::AtRisk => "at_risk",
            Deadline::Breached => "breached",
        }
    }
}

impl Schedule {
    fn minutes(&self) -> (u32, u32) {
        match self {
            Schedule::Always => (DEFAULT_REPLY_WITHIN_MINUTES, DEFAULT_AT_RISK_MINUTES),
            Schedule::Hours(h) => (h.reply_within_minutes, h.at_risk_minutes),
        }
    }

    fn after(&self, from: DateTime<Utc>, minutes: u32) -> DateTime<Utc> {
        match self {
            Schedule::Always => from + Duration::minutes(minutes.into()),
            Schedule::Hours(h) => h.after(from, minutes),
        }
    }

    /// The reply deadline of a message received at `received_at`: the instant at which the
    /// `reply_within_minutes`-th business minute after it ends.
    pub fn due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        self.after(received_at, self.minutes().0)
    }

    /// When such a message becomes `at_risk`: `at_risk_minutes` business minutes before its
    /// deadline (at once, when the deadline is shorter than that).
    pub fn at_risk_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        let (within, risk) = self.minutes();
        self.after(received_at, within.saturating_sub(risk))
    }

    /// Whether the team is working at `t`, and when that next changes (none for the
    /// always-running clock).
    pub fn online(&self, t: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
        match self {
            Schedule::Always => (true, None),
            Schedule::Hours(h) => h.online_at(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(zone: &str, week: &[(&str, &[&str])], holidays: &[&str]) -> Schedule {
        Schedule::Hours(Box::new(
            BusinessHours::from_input(&HoursInput {
                time_zone: Some(zone.into()),
                reply_within_minutes: None,
                at_risk_minutes: None,
                holidays: holidays.iter().map(|h| h.to_string()).collect(),
                week: week
                    .iter()
                    .map(|(d, r)| (d.to_string(), r.iter().map(|x| x.to_string()).collect()))
                    .collect(),
            })
            .unwrap(),
        ))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    const WEEKDAYS: [(&str, &[&str]); 5] = [
        ("mon", &["09:00-18:00"]),
        ("tue", &["09:00-18:00"]),
        ("wed", &["09:00-18:00"]),
        ("thu", &["09:00-18:00"]),
        ("fri", &["09:00-18:00"]),
    ];

    #[test]
    fn without_hours_the_deadline_is_two_hours() {
        let t = utc("2026-12-05T23:10:00Z");
        assert_eq!(Schedule::Always.due_at(t), utc("2026-12-06T01:10:00Z"));
        assert_eq!(Schedule::Always.at_risk_at(t), utc("2026-12-06T00:40:00Z"));
        assert_eq!(Schedule::Always.online(t), (true, None));
    }

    #[test]
    fn the_clock_stops_overnight_and_over_the_weekend() {
        let s = hours("Europe/Lisbon", &WEEKDAYS, &[]);
        // Friday 17:00 in Lisbon (UTC+0 in winter): one hour left that day, one on Monday.
        assert_eq!(
            s.due_at(utc("2026-12-04T17:00:00Z")),
            utc("2026-12-07T10:00:00Z")
        );
        // Received on Saturday: the clock starts on Monday at 09:00.
        assert_eq!(
            s.due_at(utc("2026-12-05T12:00:00Z")),
            utc("2026-12-07T11:00:00Z")
        );
        // A deadline may fall exactly on the closing time.
        assert_eq!(
            s.due_at(utc("2026-12-03T16:00:00Z")),
            utc("2026-12-03T18:00:00Z")
        );
        assert_eq!(
            s.at_risk_at(utc("2026-12-04T17:00:00Z")),
            utc("2026-12-07T09:30:00Z")
        );
    }

    #[test]
    fn holidays_are_closed_local_dates() {
        let s = hours("Europe/Lisbon", &WEEKDAYS, &["2026-12-25"]);
        // Thursday 24 December 17:00: one hour, then Christmas (a Friday), the weekend.
        assert_eq!(
            s.due_at(utc("2026-12-24T17:00:00Z")),
            utc("2026-12-28T10:00:00Z")
        );
    }

    #[test]
    fn real_time_is_counted_across_the_spring_gap_and_the_autumn_repeat() {
        // New York: 2026-03-08 at 02:00 clocks jump to 03:00; 2026-11-01 at 02:00 back to 01:00.
        let night = [("sun", &["00:00-04:00"][..])];
        let s = hours("America/New_York", &night, &[]);
        // Sunday 8 March from 00:00 EST (05:00Z): the range is 3 real hours long, so two
        // hours end at 03:00 EDT, 07:00Z.
        assert_eq!(
            s.due_at(utc("2026-03-08T05:00:00Z")),
            utc("2026-03-08T07:00:00Z")
        );
        // Sunday 1 November from 00:00 EDT (04:00Z): 5 real hours; two end at 01:00 EST
        // (the second 01:00), 06:00Z.
        assert_eq!(
            s.due_at(utc("2026-11-01T04:00:00Z")),
            utc("2026-11-01T06:00:00Z")
        );
        // Lisbon: 2026-03-29 01:00 -> 02:00; a range 00:30-02:30 lasts one real hour.
        let s = hours(
            "Europe/Lisbon",
            &[("sun", &["00:30-02:30"][..]), ("mon", &["09:00-18:00"][..])],
            &[],
        );
        // From 00:30 WET (00:30Z): one hour to 02:30 WEST (01:30Z), then Monday 09:00 WEST.
        assert_eq!(
            s.due_at(utc("2026-03-29T00:30:00Z")),
            utc("2026-03-30T09:00:00Z")
        );
        // Lisbon's autumn: 2026-10-25 02:00 -> 01:00; 00:00-03:00 lasts four real hours.
        let s = hours("Europe/Lisbon", &[("sun", &["00:00-03:00"][..])], &[]);
        assert_eq!(
            s.due_at(utc("2026-10-24T23:00:00Z")),
            utc("2026-10-25T01:00:00Z")
        );
        assert_eq!(
            hours("Europe/Lisbon", &[("sun", &["00:00-03:00"][..])], &[])
                .at_risk_at(utc("2026-10-24T23:00:00Z")),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn touching_ranges_and_midnight_run_on() {
        let s = hours(
            "Europe/Lisbon",
            &[
                ("mon", &["20:00-24:00"][..]),
                ("tue", &["00:00-02:00", "02:00-04:00"][..]),
            ],
            &[],
        );
        let t = utc("2026-12-07T23:00:00Z");
        assert_eq!(s.online(t), (true, Some(utc("2026-12-08T04:00:00Z"))));
        assert_eq!(s.due_at(t), utc("2026-12-08T01:00:00Z"));
        assert_eq!(
            s.online(utc("2026-12-08T05:00:00Z")),
            (false, Some(utc("2026-12-14T20:00:00Z")))
        );
    }

    #[test]
    fn bad_tables_name_their_key() {
        let input = |zone: &str, week: Vec<(&str, Vec<&str>)>, holidays: Vec<&str>| HoursInput {
            time_zone: Some(zone.into()),
            reply_within_minutes: None,
            at_risk_minutes: None,
            holidays: holidays.into_iter().map(String::from).collect(),
            week: week
                .into_iter()
                .map(|(d, r)| (d.to_string(), r.into_iter().map(String::from).collect()))
                .collect(),
        };
        let key = |i: HoursInput| BusinessHours::from_input(&i).unwrap_err().key;
        assert_eq!(
            key(input(
                "Mars/Olympus",
                vec![("mon", vec!["09:00-10:00"])],
                vec![]
            )),
            "hours.time_zone"
        );
        assert_eq!(
            key(input(
                "UTC",
                vec![("mon", vec!["09:00-12:00", "11:00-13:00"])],
                vec![]
            )),
            "hours.week.mon"
        );
        assert_eq!(
            key(input("UTC", vec![("tue", vec!["18:00-09:00"])], vec![])),
            "hours.week.tue[0]"
        );
        assert_eq!(
            key(input("UTC", vec![("tue", vec!["9-5"])], vec![])),
            "hours.week.tue[0]"
        );
        assert_eq!(
            key(input("UTC", vec![("tue", vec![])], vec![])),
            "hours.week"
        );
        assert_eq!(
            key(input("UTC", vec![("fun", vec!["09:00-10:00"])], vec![])),
            "hours.week.fun"
        );
        assert_eq!(
            key(input(
                "UTC",
                vec![("mon", vec!["09:00-10:00"])],
                vec!["2026-13-01"]
            )),
            "hours.holidays[0]"
        );
        assert!(BusinessHours::from_input(&input(
            "UTC",
            vec![("mon", vec!["09:00-12:00", "12:00-13:00"])],
            vec![]
        ))
        .is_ok());
    }
}
