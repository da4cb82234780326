//! The office's business hours: a weekly schedule evaluated in the local wall time of an IANA time
//! zone, parsed once from configuration (`BUSINESS_HOURS`, `BUSINESS_TIMEZONE`).
//!
//! Format of the hours: ranges separated by `;`, each `DAYS HH:MM-HH:MM`, where `DAYS` is a day
//! (`mon` … `sun`, or French `lun` … `dim`, case-insensitive), a day range (`mon-fri`, wrapping
//! like `sat-mon` allowed) or a comma list (`mon,wed,fri`, items may be ranges). Times go from
//! `00:00` to `24:00`; the start is inclusive, the end exclusive, and a range may not cross
//! midnight. Several ranges may name the same day (a lunch break). The empty string or `closed`
//! means never open.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Business hours used when `BUSINESS_HOURS` is not set.
pub const DEFAULT_HOURS: &str = "mon-fri 07:00-17:00";

/// Time zone used when `BUSINESS_TIMEZONE` is not set.
pub const DEFAULT_TIMEZONE: &str = "America/Toronto";

/// Example quoted in every hours error message.
const EXPECTED_HOURS: &str = "\"mon-fri 07:00-17:00; sat 08:00-12:00\"";

/// Accepted day names, Monday first: English, then French.
const DAY_NAMES: [[&str; 2]; 7] = [
    ["mon", "lun"],
    ["tue", "mar"],
    ["wed", "mer"],
    ["thu", "jeu"],
    ["fri", "ven"],
    ["sat", "sam"],
    ["sun", "dim"],
];

/// An opening range in minutes since local midnight: start inclusive, end exclusive.
type Range = (u16, u16);

/// A set of weekdays, Monday first.
type DaySet = [bool; 7];

/// Minutes in a day: `24:00`, the latest accepted end.
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Why business hours or their time zone could not be parsed. Each message quotes the offending
/// part and the expected format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// A range is not of the form `DAYS HH:MM-HH:MM` (days or times missing, empty list item).
    #[error(
        "BUSINESS_HOURS: \"{range}\": not of the form DAYS HH:MM-HH:MM; expected e.g. {EXPECTED_HOURS}"
    )]
    Malformed {
        /// The offending range.
        range: String,
    },
    /// A day name is not one of `mon` … `sun` or `lun` … `dim`.
    #[error("BUSINESS_HOURS: \"{range}\": unknown day \"{day}\"; expected e.g. {EXPECTED_HOURS}")]
    UnknownDay {
        /// The range holding the day.
        range: String,
        /// The unrecognised day name.
        day: String,
    },
    /// A time is not `HH:MM` between `00:00` and `24:00`.
    #[error(
        "BUSINESS_HOURS: \"{range}\": invalid time \"{time}\" (HH:MM between 00:00 and 24:00); expected e.g. {EXPECTED_HOURS}"
    )]
    InvalidTime {
        /// The range holding the time.
        range: String,
        /// The invalid time.
        time: String,
    },
    /// The end of a range is not after its start: empty, or crossing midnight.
    #[error(
        "BUSINESS_HOURS: \"{range}\": end {end} is not after start {start} (a range may not cross midnight: split it, e.g. \"fri 22:00-24:00; sat 00:00-02:00\"); expected e.g. {EXPECTED_HOURS}"
    )]
    EndNotAfterStart {
        /// The offending range.
        range: String,
        /// Its start, as written.
        start: String,
        /// Its end, as written.
        end: String,
    },
    /// The time zone is not in the (bundled) IANA time zone database.
    #[error(
        "BUSINESS_TIMEZONE: unknown time zone \"{name}\"; expected an IANA name such as America/Toronto"
    )]
    UnknownTimezone {
        /// The name as given.
        name: String,
    },
}

/// A weekly schedule of opening ranges in a time zone. Built by [`BusinessHours::parse`].
#[derive(Debug, Clone)]
pub struct BusinessHours {
    /// Opening ranges per weekday (Monday first) in minutes since local midnight, start
    /// inclusive, end exclusive; sorted, non-overlapping, non-adjacent.
    days: [Vec<Range>; 7],
    timezone: TimeZone,
    timezone_name: String,
}

impl BusinessHours {
    /// Parses `hours` (e.g. `"mon-fri 07:00-17:00; sat 08:00-12:00"`, see the module
    /// documentation) in the IANA time zone `timezone` (e.g. `"America/Toronto"`).
    pub fn parse(hours: &str, timezone: &str) -> Result<Self, HoursError> {
        let days = parse_schedule(hours)?;
        let name = timezone.trim();
        let tz = TimeZone::get(name)
            .ok()
            .filter(|tz| !tz.is_unknown())
            .ok_or_else(|| HoursError::UnknownTimezone {
                name: name.to_owned(),
            })?;
        let timezone_name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(Self {
            days,
            timezone: tz,
            timezone_name,
        })
    }

    /// Whether the office is open at the instant `at`, judged by the local wall time of the time
    /// zone. Instants outside the supported range (years -9999 to 9999) are closed.
    pub fn is_open_at(&self, at: time::OffsetDateTime) -> bool {
        let Ok(timestamp) = Timestamp::from_nanosecond(at.unix_timestamp_nanos()) else {
            return false;
        };
        let local = timestamp.to_zoned(self.timezone.clone());
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        usize::try_from(local.weekday().to_monday_zero_offset())
            .ok()
            .and_then(|day| self.days.get(day))
            .is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(start, end)| i32::from(start) <= minute && minute < i32::from(end))
            })
    }

    /// Whether the office is open now.
    pub fn is_open_now(&self) -> bool {
        self.is_open_at(time::OffsetDateTime::now_utc())
    }

    /// The local calendar date at the instant `at`.
    pub fn local_date(&self, at: time::OffsetDateTime) -> Option<time::Date> {
        let timestamp = Timestamp::from_nanosecond(at.unix_timestamp_nanos()).ok()?;
        let local = timestamp.to_zoned(self.timezone.clone()).date();
        let month = time::Month::try_from(u8::try_from(local.month()).ok()?).ok()?;
        time::Date::from_calendar_date(
            i32::from(local.year()),
            month,
            u8::try_from(local.day()).ok()?,
        )
        .ok()
    }

    /// The first instant of the local calendar day `date` (midnight, or the first instant after a
    /// gap), `None` outside the supported range.
    pub fn day_start(&self, date: time::Date) -> Option<time::OffsetDateTime> {
        let zoned = civil(date)?.to_zoned(self.timezone.clone()).ok()?;
        instant(zoned.timestamp())
    }

    /// The opening ranges of the local day `date`, as instants (start inclusive, end exclusive).
    pub fn open_ranges(
        &self,
        date: time::Date,
    ) -> Vec<(time::OffsetDateTime, time::OffsetDateTime)> {
        let Some(day) = civil(date) else {
            return Vec::new();
        };
        let at = |minutes: u16| -> Option<time::OffsetDateTime> {
            let (day, minutes) = if minutes >= MINUTES_PER_DAY {
                (day.tomorrow().ok()?, minutes - MINUTES_PER_DAY)
            } else {
                (day, minutes)
            };
            let hour = i8::try_from(minutes / 60).ok()?;
            let minute = i8::try_from(minutes % 60).ok()?;
            let zoned = day
                .at(hour, minute, 0, 0)
                .to_zoned(self.timezone.clone())
                .ok()?;
            instant(zoned.timestamp())
        };
        self.days
            .get(usize::from(date.weekday().number_days_from_monday()))
            .map(|ranges| {
                ranges
                    .iter()
                    .filter_map(|&(start, end)| Some((at(start)?, at(end)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The IANA name of the time zone (canonical case, e.g. `America/Toronto`).
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// The schedule in canonical form, e.g. `"mon-fri 07:00-18:00; sat 08:00-12:00"`, or
    /// `"closed"`. Parsing it again gives the same schedule.
    pub fn describe(&self) -> String {
        // Days sharing the same ranges, in order of their first day.
        let mut groups: Vec<(&[Range], DaySet)> = Vec::new();
        for (day, ranges) in self.days.iter().enumerate() {
            if ranges.is_empty() {
                continue;
            }
            if let Some((_, members)) = groups.iter_mut().find(|(r, _)| *r == ranges.as_slice()) {
                members[day] = true;
            } else {
                let mut members = [false; 7];
                members[day] = true;
                groups.push((ranges, members));
            }
        }
        let mut parts = Vec::new();
        for (ranges, members) in groups {
            let days = describe_days(members);
            for &(start, end) in ranges {
                parts.push(format!(
                    "{days} {}-{}",
                    format_time(start),
                    format_time(end)
                ));
            }
        }
        if parts.is_empty() {
            "closed".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

impl Default for BusinessHours {
    /// [`DEFAULT_HOURS`] in [`DEFAULT_TIMEZONE`].
    fn default() -> Self {
        // Both constants are valid and the time zone database is bundled
        // (`tzdb-bundle-always`); the `default_is_mon_fri_in_toronto` test proves it.
        Self::parse(DEFAULT_HOURS, DEFAULT_TIMEZONE)
            .expect("the default business hours and time zone are valid")
    }
}

/// Parses the whole `BUSINESS_HOURS` value into per-day normalised ranges.
fn civil(date: time::Date) -> Option<jiff::civil::Date> {
    jiff::civil::Date::new(
        i16::try_from(date.year()).ok()?,
        i8::try_from(u8::from(date.month())).ok()?,
        i8::try_from(date.day()).ok()?,
    )
    .ok()
}

fn instant(t: Timestamp) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond()).ok()
}

fn parse_schedule(hours: &str) -> Result<[Vec<Range>; 7], HoursError> {
    let mut days: [Vec<Range>; 7] = std::array::from_fn(|_| Vec::new());
    let trimmed = hours.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("closed") {
        return Ok(days);
    }
    for range in trimmed.split(';').map(str::trim) {
        if range.is_empty() {
            continue; // tolerate a trailing or doubled `;`
        }
        let (members, start, end) = parse_range(range)?;
        for (day, member) in members.into_iter().enumerate() {
            if member {
                days[day].push((start, end));
            }
        }
    }
    for ranges in &mut days {
        normalise(ranges);
    }
    Ok(days)
}

/// Parses one `DAYS HH:MM-HH:MM` range into its days (Monday first) and its minutes.
fn parse_range(range: &str) -> Result<(DaySet, u16, u16), HoursError> {
    let malformed = || HoursError::Malformed {
        range: range.to_owned(),
    };
    // The times start at the first digit that does not belong to a word (so `m0n` stays a day).
    let mut previous_is_letter = false;
    let mut split = None;
    for (index, c) in range.char_indices() {
        if c.is_ascii_digit() && !previous_is_letter {
            split = Some(index);
            break;
        }
        previous_is_letter = c.is_alphabetic();
    }
    let split = split.ok_or_else(malformed)?;
    let (days_text, times_text) = (range[..split].trim(), range[split..].trim());
    if days_text.is_empty() {
        return Err(malformed());
    }
    let members = parse_days(range, days_text)?;
    let (start_text, end_text) = times_text.split_once('-').ok_or_else(malformed)?;
    let (start_text, end_text) = (start_text.trim(), end_text.trim());
    let start = parse_time(range, start_text)?;
    let end = parse_time(range, end_text)?;
    if start >= end {
        return Err(HoursError::EndNotAfterStart {
            range: range.to_owned(),
            start: start_text.to_owned(),
            end: end_text.to_owned(),
        });
    }
    Ok((members, start, end))
}

/// Parses `mon`, `mon-fri`, `sat-mon` or `mon,wed-fri` into the set of days (Monday first).
fn parse_days(range: &str, text: &str) -> Result<DaySet, HoursError> {
    let mut members = [false; 7];
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(HoursError::Malformed {
                range: range.to_owned(),
            });
        }
        if let Some((first, last)) = item.split_once('-') {
            let first = parse_day(range, first.trim())?;
            let last = parse_day(range, last.trim())?;
            let mut day = first;
            loop {
                members[day] = true;
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        } else {
            members[parse_day(range, item)?] = true;
        }
    }
    Ok(members)
}

/// The index (Monday = 0) of a day name, English or French, case-insensitive.
fn parse_day(range: &str, name: &str) -> Result<usize, HoursError> {
    DAY_NAMES
        .iter()
        .position(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .ok_or_else(|| HoursError::UnknownDay {
            range: range.to_owned(),
            day: name.to_owned(),
        })
}

/// Parses `HH:MM` (or `H:MM`) from `00:00` to `24:00` into minutes since midnight.
fn parse_time(range: &str, text: &str) -> Result<u16, HoursError> {
    let invalid = || HoursError::InvalidTime {
        range: range.to_owned(),
        time: text.to_owned(),
    };
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&hours.len())
        || minutes.len() != 2
        || !all_digits(hours)
        || !all_digits(minutes)
    {
        return Err(invalid());
    }
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    let total = hours * 60 + minutes;
    if minutes >= 60 || total > MINUTES_PER_DAY {
        return Err(invalid());
    }
    Ok(total)
}

/// Sorts ranges and merges the overlapping or adjacent ones.
fn normalise(ranges: &mut Vec<Range>) {
    ranges.sort_unstable();
    let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
    for &(start, end) in &*ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    *ranges = merged;
}

/// `HH:MM` for minutes since midnight.
fn format_time(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Canonical days: runs of consecutive days (wrapping over Sunday) as `first-last`, single days
/// alone, joined with `,` in order of their first day; `mon-sun` for every day.
fn describe_days(members: DaySet) -> String {
    if members.iter().all(|&m| m) {
        return "mon-sun".to_owned();
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    // A run starts on a member day whose previous day is not a member.
    for start in 0..7 {
        if !members[start] || members[(start + 6) % 7] {
            continue;
        }
        let mut end = start;
        while members[(end + 1) % 7] {
            end = (end + 1) % 7;
        }
        runs.push((start, end));
    }
    let mut out = String::new();
    for (index, &(start, end)) in runs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(DAY_NAMES[start][0]);
        if end != start {
            let _ = write!(out, "-{}", DAY_NAMES[end][0]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use time::macros::datetime;

    #[test]
    fn local_days_and_opening_ranges_as_instants() {
        let hours = BusinessHours::parse("mon-fri 07:00-17:00; sat 08:00-24:00", "America/Toronto")
            .unwrap();
        let monday = time::macros::date!(2026 - 12 - 07);
        assert_eq!(
            hours.day_start(monday),
            Some(datetime!(2026-12-07 05:00 UTC))
        );
        // Summer time: -4.
        assert_eq!(
            hours.day_start(time::macros::date!(2026 - 07 - 06)),
            Some(datetime!(2026-07-06 04:00 UTC))
        );
        assert_eq!(
            hours.open_ranges(monday),
            vec![(
                datetime!(2026-12-07 12:00 UTC),
                datetime!(2026-12-07 22:00 UTC)
            )]
        );
        assert_eq!(
            hours.open_ranges(time::macros::date!(2026 - 12 - 12)),
            vec![(
                datetime!(2026-12-12 13:00 UTC),
                datetime!(2026-12-13 05:00 UTC)
            )]
        );
        assert!(
            hours
                .open_ranges(time::macros::date!(2026 - 12 - 13))
                .is_empty()
        );
        assert_eq!(
            hours.local_date(datetime!(2026-12-07 04:59 UTC)),
            Some(time::macros::date!(2026 - 12 - 06))
        );
    }

    const TORONTO: &str = "America/Toronto";
    const VANCOUVER: &str = "America/Vancouver";

    fn hours(text: &str) -> BusinessHours {
        BusinessHours::parse(text, TORONTO).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// The instant at the local wall time `y-m-d h:mi` in `tz` (times that exist exactly once).
    fn local(tz: &str, (y, m, d): (i16, i8, i8), (h, mi): (i8, i8)) -> OffsetDateTime {
        let zoned = jiff::civil::date(y, m, d)
            .at(h, mi, 0, 0)
            .in_tz(tz)
            .unwrap();
        OffsetDateTime::from_unix_timestamp_nanos(zoned.timestamp().as_nanosecond()).unwrap()
    }

    /// Monday 2026-01-05 to Sunday 2026-01-11 (winter time), Monday first.
    const WEEK: [(i16, i8, i8); 7] = [
        (2026, 1, 5),
        (2026, 1, 6),
        (2026, 1, 7),
        (2026, 1, 8),
        (2026, 1, 9),
        (2026, 1, 10),
        (2026, 1, 11),
    ];

    /// Asserts `expected_open[day]` (Monday first) for every day of [`WEEK`] at each time.
    fn assert_week(hours: &BusinessHours, times: &[((i8, i8), [bool; 7])]) {
        for &(time, expected) in times {
            for (day, &date) in WEEK.iter().enumerate() {
                let at = local(hours.timezone_name(), date, time);
                assert_eq!(
                    hours.is_open_at(at),
                    expected[day],
                    "{} at {date:?} {time:?} ({at})",
                    hours.describe()
                );
            }
        }
    }

    const WEEKDAYS: [bool; 7] = [true, true, true, true, true, false, false];
    const NEVER: [bool; 7] = [false; 7];

    #[test]
    fn default_is_mon_fri_7_to_17_in_toronto() {
        let default = BusinessHours::default();
        assert_eq!(default.describe(), DEFAULT_HOURS);
        assert_eq!(default.timezone_name(), DEFAULT_TIMEZONE);
        assert_week(
            &default,
            &[
                ((0, 0), NEVER),
                ((6, 59), NEVER),
                ((7, 0), WEEKDAYS),
                ((12, 0), WEEKDAYS),
                ((16, 59), WEEKDAYS),
                ((17, 0), NEVER),
                ((23, 59), NEVER),
            ],
        );
    }

    /// A local time and whether the office is open then, Monday to Sunday.
    type Expectation = ((i8, i8), [bool; 7]);

    #[test]
    fn edges_of_every_range() {
        let table: &[(&str, &[Expectation])] = &[
            (
                "mon-fri 07:00-17:00",
                &[
                    ((6, 59), NEVER),
                    ((7, 0), WEEKDAYS),
                    ((16, 59), WEEKDAYS),
                    ((17, 0), NEVER),
                ],
            ),
            (
                "mon-fri 07:00-18:00; sat 08:00-12:00",
                &[
                    ((6, 59), NEVER),
                    ((7, 0), WEEKDAYS),
                    ((7, 59), WEEKDAYS),
                    ((8, 0), [true, true, true, true, true, true, false]),
                    ((11, 59), [true, true, true, true, true, true, false]),
                    ((12, 0), WEEKDAYS),
                    ((17, 59), WEEKDAYS),
                    ((18, 0), NEVER),
                ],
            ),
            (
                "sun 00:00-24:00",
                &[
                    ((0, 0), [false, false, false, false, false, false, true]),
                    ((23, 59), [false, false, false, false, false, false, true]),
                ],
            ),
            (
                "mon-sun 23:00-24:00",
                &[
                    ((22, 59), NEVER),
                    ((23, 0), [true; 7]),
                    ((23, 59), [true; 7]),
                    ((0, 0), NEVER),
                ],
            ),
            (
                "",
                &[
                    ((0, 0), NEVER),
                    ((7, 0), NEVER),
                    ((12, 0), NEVER),
                    ((23, 59), NEVER),
                ],
            ),
            (
                "closed",
                &[
                    ((0, 0), NEVER),
                    ((7, 0), NEVER),
                    ((12, 0), NEVER),
                    ((23, 59), NEVER),
                ],
            ),
            (" CLOSED ", &[((7, 0), NEVER), ((12, 0), NEVER)]),
        ];
        for &(text, times) in table {
            assert_week(&hours(text), times);
        }
    }

    #[test]
    fn lunch_break_and_several_ranges_per_day() {
        let lunch = [true, true, true, true, true, false, false];
        assert_week(
            &hours("mon-fri 07:00-12:00; mon-fri 13:00-17:00; wed 18:00-20:00"),
            &[
                ((6, 59), NEVER),
                ((7, 0), lunch),
                ((11, 59), lunch),
                ((12, 0), NEVER),
                ((12, 59), NEVER),
                ((13, 0), lunch),
                ((16, 59), lunch),
                ((17, 0), NEVER),
                ((17, 59), NEVER),
                ((18, 0), [false, false, true, false, false, false, false]),
                ((19, 59), [false, false, true, false, false, false, false]),
                ((20, 0), NEVER),
            ],
        );
    }

    #[test]
    fn wrapping_day_ranges_lists_and_french_names() {
        let table: &[(&str, [bool; 7])] = &[
            (
                "sat-mon 10:00-14:00",
                [true, false, false, false, false, true, true],
            ),
            (
                "fri-tue 10:00-14:00",
                [true, true, false, false, true, true, true],
            ),
            (
                "sun-sun 10:00-14:00",
                [false, false, false, false, false, false, true],
            ),
            (
                "mon,wed,fri 10:00-14:00",
                [true, false, true, false, true, false, false],
            ),
            (
                "mon , wed-thu,sun 10:00-14:00",
                [true, false, true, true, false, false, true],
            ),
            ("lun-ven 10:00-14:00", WEEKDAYS),
            ("LUN,Mar,mer,JEU,ven 10:00-14:00", WEEKDAYS),
            (
                "sam-dim 10:00-14:00",
                [false, false, false, false, false, true, true],
            ),
            (
                "dim-lun 10:00-14:00",
                [true, false, false, false, false, false, true],
            ),
            ("Mon-FRI 10:00-14:00", WEEKDAYS),
            (
                "tue 10:00-14:00; mar 12:00-13:00",
                [false, true, false, false, false, false, false],
            ),
        ];
        for &(text, days) in table {
            assert_week(
                &hours(text),
                &[
                    ((9, 59), NEVER),
                    ((10, 0), days),
                    ((13, 59), days),
                    ((14, 0), NEVER),
                ],
            );
        }
    }

    #[test]
    fn describe_is_canonical_and_round_trips() {
        let table = [
            ("mon-fri 07:00-17:00", "mon-fri 07:00-17:00"),
            (
                "  mon - fri   7:00 - 18:00 ;  SAT 8:00-12:00 ; ",
                "mon-fri 07:00-18:00; sat 08:00-12:00",
            ),
            (
                "lun,mar,mer,jeu,ven 07:00-18:00;sam 08:00-12:00",
                "mon-fri 07:00-18:00; sat 08:00-12:00",
            ),
            ("", "closed"),
            ("closed", "closed"),
            ("mon-sun 00:00-24:00", "mon-sun 00:00-24:00"),
            ("sun-sat 00:00-24:00", "mon-sun 00:00-24:00"),
            ("sat-mon 10:00-14:00", "sat-mon 10:00-14:00"),
            ("fri,mon,wed 09:00-10:00", "mon,wed,fri 09:00-10:00"),
            ("mon 07:00-12:00; mon 11:00-17:00", "mon 07:00-17:00"),
            ("mon 07:00-12:00; mon 12:00-17:00", "mon 07:00-17:00"),
            (
                "mon 13:00-17:00; mon 07:00-12:00",
                "mon 07:00-12:00; mon 13:00-17:00",
            ),
            (
                "mon-fri 07:00-12:00; mon-fri 13:00-17:00; sat 08:00-12:00",
                "mon-fri 07:00-12:00; mon-fri 13:00-17:00; sat 08:00-12:00",
            ),
            (
                "sun 10:00-11:00; mon 10:00-11:00; wed 10:00-11:00",
                "wed,sun-mon 10:00-11:00",
            ),
        ];
        for (input, canonical) in table {
            let described = hours(input).describe();
            assert_eq!(described, canonical, "{input:?}");
            assert_eq!(
                hours(&described).describe(),
                canonical,
                "round trip of {input:?}"
            );
        }
    }

    #[test]
    fn daylight_saving_changes_in_toronto() {
        let daily = hours("mon-sun 07:00-17:00");
        let default = BusinessHours::default();
        let table = [
            // Spring forward, Sunday 2026-03-08 02:00 EST (UTC-5) -> 03:00 EDT (UTC-4).
            (datetime!(2026-03-06 11:30 UTC), false, false), // Fri 06:30 EST
            (datetime!(2026-03-06 12:30 UTC), true, true),   // Fri 07:30 EST
            (datetime!(2026-03-07 11:30 UTC), false, false), // Sat 06:30 EST
            (datetime!(2026-03-07 21:59 UTC), true, false),  // Sat 16:59 EST
            (datetime!(2026-03-07 22:00 UTC), false, false), // Sat 17:00 EST
            (datetime!(2026-03-08 11:30 UTC), true, false),  // Sun 07:30 EDT
            (datetime!(2026-03-09 10:59 UTC), false, false), // Mon 06:59 EDT
            (datetime!(2026-03-09 11:00 UTC), true, true),   // Mon 07:00 EDT
            (datetime!(2026-03-09 11:30 UTC), true, true),   // Mon 07:30 EDT
            (datetime!(2026-03-09 20:59 UTC), true, true),   // Mon 16:59 EDT
            (datetime!(2026-03-09 21:00 UTC), false, false), // Mon 17:00 EDT
            // Fall back, Sunday 2026-11-01 02:00 EDT (UTC-4) -> 01:00 EST (UTC-5).
            (datetime!(2026-10-30 11:30 UTC), true, true), // Fri 07:30 EDT
            (datetime!(2026-10-31 10:59 UTC), false, false), // Sat 06:59 EDT
            (datetime!(2026-10-31 11:30 UTC), true, false), // Sat 07:30 EDT
            (datetime!(2026-11-01 11:30 UTC), false, false), // Sun 06:30 EST
            (datetime!(2026-11-01 12:30 UTC), true, false), // Sun 07:30 EST
            (datetime!(2026-11-02 11:30 UTC), false, false), // Mon 06:30 EST
            (datetime!(2026-11-02 11:59 UTC), false, false), // Mon 06:59 EST
            (datetime!(2026-11-02 12:00 UTC), true, true), // Mon 07:00 EST
            (datetime!(2026-11-02 12:30 UTC), true, true), // Mon 07:30 EST
            (datetime!(2026-11-02 21:59 UTC), true, true), // Mon 16:59 EST
            (datetime!(2026-11-02 22:00 UTC), false, false), // Mon 17:00 EST
        ];
        for (at, daily_open, default_open) in table {
            assert_eq!(daily.is_open_at(at), daily_open, "daily at {at}");
            assert_eq!(default.is_open_at(at), default_open, "default at {at}");
        }
    }

    #[test]
    fn skipped_and_repeated_hours_do_not_panic() {
        // 2026-03-08 02:00-02:59 does not exist in Toronto: never open.
        let skipped = hours("sun 02:00-03:00");
        let mut at = datetime!(2026-03-08 05:00 UTC);
        while at < datetime!(2026-03-08 09:00 UTC) {
            assert!(!skipped.is_open_at(at), "{at}");
            at += time::Duration::minutes(1);
        }
        let table = [
            // Spring forward: 01:59 EST is followed by 03:00 EDT.
            (datetime!(2026-03-08 05:59 UTC), false), // 00:59 EST
            (datetime!(2026-03-08 06:00 UTC), true),  // 01:00 EST
            (datetime!(2026-03-08 06:59 UTC), true),  // 01:59 EST
            (datetime!(2026-03-08 07:00 UTC), false), // 03:00 EDT
            // Fall back: 01:00-01:59 happens twice, open both times.
            (datetime!(2026-11-01 04:59 UTC), false), // 00:59 EDT
            (datetime!(2026-11-01 05:00 UTC), true),  // 01:00 EDT
            (datetime!(2026-11-01 05:59 UTC), true),  // 01:59 EDT
            (datetime!(2026-11-01 06:00 UTC), true),  // 01:00 EST
            (datetime!(2026-11-01 06:59 UTC), true),  // 01:59 EST
            (datetime!(2026-11-01 07:00 UTC), false), // 02:00 EST
        ];
        let one_am = hours("sun 01:00-02:00");
        for (at, open) in table {
            assert_eq!(one_am.is_open_at(at), open, "{at}");
        }
    }

    #[test]
    fn another_time_zone() {
        let vancouver = BusinessHours::parse(DEFAULT_HOURS, VANCOUVER).unwrap();
        let toronto = BusinessHours::default();
        assert_eq!(vancouver.timezone_name(), VANCOUVER);
        assert_week(
            &vancouver,
            &[
                ((6, 59), NEVER),
                ((7, 0), WEEKDAYS),
                ((16, 59), WEEKDAYS),
                ((17, 0), NEVER),
            ],
        );
        let table = [
            // (instant, open in Vancouver, open in Toronto)
            (datetime!(2026-01-05 14:59 UTC), false, true), // Mon 06:59 PST, 09:59 EST
            (datetime!(2026-01-05 15:00 UTC), true, true),  // Mon 07:00 PST, 10:00 EST
            (datetime!(2026-01-06 00:59 UTC), true, false), // Mon 16:59 PST, 19:59 EST
            (datetime!(2026-01-06 01:00 UTC), false, false), // Mon 17:00 PST
            (datetime!(2026-01-10 00:30 UTC), true, false), // Fri 16:30 PST, Fri 19:30 EST (Sat in UTC)
            (datetime!(2026-07-06 13:59 UTC), false, true), // Mon 06:59 PDT, 09:59 EDT
            (datetime!(2026-07-06 14:00 UTC), true, true),  // Mon 07:00 PDT
        ];
        for (at, in_vancouver, in_toronto) in table {
            assert_eq!(vancouver.is_open_at(at), in_vancouver, "Vancouver at {at}");
            assert_eq!(toronto.is_open_at(at), in_toronto, "Toronto at {at}");
        }
    }

    #[test]
    fn time_zone_names() {
        for (input, name) in [
            ("America/Toronto", "America/Toronto"),
            ("america/toronto", "America/Toronto"),
            ("  America/Vancouver ", "America/Vancouver"),
            ("UTC", "UTC"),
        ] {
            assert_eq!(
                BusinessHours::parse(DEFAULT_HOURS, input)
                    .unwrap()
                    .timezone_name(),
                name
            );
        }
        for name in [
            "America/Montréal",
            "",
            "Etc/Unknown",
            "Mars/Olympus",
            "../../etc/passwd",
            "EST5EDT,M3.2.0",
        ] {
            assert_eq!(
                BusinessHours::parse(DEFAULT_HOURS, name).unwrap_err(),
                HoursError::UnknownTimezone {
                    name: name.trim().to_owned()
                },
                "{name:?}"
            );
        }
        assert_eq!(
            BusinessHours::parse(DEFAULT_HOURS, "America/Montréal")
                .unwrap_err()
                .to_string(),
            "BUSINESS_TIMEZONE: unknown time zone \"America/Montréal\"; expected an IANA name such as America/Toronto"
        );
    }

    #[test]
    fn malformed_hours() {
        let malformed = |range: &str| HoursError::Malformed {
            range: range.to_owned(),
        };
        let day = |range: &str, day: &str| HoursError::UnknownDay {
            range: range.to_owned(),
            day: day.to_owned(),
        };
        let time = |range: &str, time: &str| HoursError::InvalidTime {
            range: range.to_owned(),
            time: time.to_owned(),
        };
        let order = |range: &str, start: &str, end: &str| HoursError::EndNotAfterStart {
            range: range.to_owned(),
            start: start.to_owned(),
            end: end.to_owned(),
        };
        let table = [
            ("mon-fri", malformed("mon-fri")),
            ("07:00-17:00", malformed("07:00-17:00")),
            ("mon 07:00", malformed("mon 07:00")),
            ("mon,,fri 07:00-17:00", malformed("mon,,fri 07:00-17:00")),
            ("mon-fri 07:00-17:00; tue", malformed("tue")),
            ("closed; mon 07:00-08:00", malformed("closed")),
            ("mon-fri 07:00-17:00;  2 ", malformed("2")),
            ("mon-fry 07:00-17:00", day("mon-fry 07:00-17:00", "fry")),
            ("m0n 07:00-17:00", day("m0n 07:00-17:00", "m0n")),
            ("monday 07:00-17:00", day("monday 07:00-17:00", "monday")),
            ("mon- 07:00-17:00", day("mon- 07:00-17:00", "")),
            (
                "mon-wed-fri 07:00-17:00",
                day("mon-wed-fri 07:00-17:00", "wed-fri"),
            ),
            ("lun-vén 07:00-17:00", day("lun-vén 07:00-17:00", "vén")),
            ("mon 25:00-26:00", time("mon 25:00-26:00", "25:00")),
            ("mon 07:60-08:00", time("mon 07:60-08:00", "07:60")),
            ("mon 23:00-24:01", time("mon 23:00-24:01", "24:01")),
            ("mon 7h00-17h00", time("mon 7h00-17h00", "7h00")),
            ("mon 07:00-+8:00", time("mon 07:00-+8:00", "+8:00")),
            (
                "mon 07:00-17:00-18:00",
                time("mon 07:00-17:00-18:00", "17:00-18:00"),
            ),
            ("mon 007:00-08:00", time("mon 007:00-08:00", "007:00")),
            ("mon 07:0-08:00", time("mon 07:0-08:00", "07:0")),
            ("mon 07:00-", time("mon 07:00-", "")),
            (
                "mon 22:00-02:00",
                order("mon 22:00-02:00", "22:00", "02:00"),
            ),
            (
                "mon 09:00-09:00",
                order("mon 09:00-09:00", "09:00", "09:00"),
            ),
            (
                "mon 00:00-00:00",
                order("mon 00:00-00:00", "00:00", "00:00"),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(
                BusinessHours::parse(input, TORONTO).unwrap_err(),
                expected,
                "{input:?}"
            );
        }
        let message = |input: &str| {
            BusinessHours::parse(input, TORONTO)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("mon-fry 07:00-17:00"),
            "BUSINESS_HOURS: \"mon-fry 07:00-17:00\": unknown day \"fry\"; expected e.g. \"mon-fri 07:00-17:00; sat 08:00-12:00\""
        );
        assert!(message("fri 22:00-02:00").contains("may not cross midnight"));
        for input in ["mon-fri", "mon 25:00-26:00", "fri 22:00-02:00"] {
            assert!(
                message(input).contains("expected e.g. \"mon-fri 07:00-17:00"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn extreme_instants_are_closed_without_panicking() {
        let always = hours("mon-sun 00:00-24:00");
        for at in [
            time::PrimitiveDateTime::MIN.assume_utc(),
            time::PrimitiveDateTime::MAX.assume_utc(),
            OffsetDateTime::UNIX_EPOCH,
        ] {
            let _ = always.is_open_at(at);
        }
        assert!(always.is_open_at(OffsetDateTime::UNIX_EPOCH));
        let _ = always.is_open_now();
        assert!(!hours("closed").is_open_now());
    }

    #[test]
    fn parse_never_panics_on_every_short_string() {
        const ALPHABET: [char; 14] = [
            'm', 'o', 'n', '-', '0', '2', '4', '7', ':', ';', ',', ' ', 'é', 'x',
        ];
        let mut strings = vec![String::new()];
        let mut count = 0;
        for _ in 0..4 {
            strings = strings
                .iter()
                .flat_map(|s| ALPHABET.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for s in &strings {
                if let Ok(parsed) = BusinessHours::parse(s, "UTC") {
                    assert_eq!(
                        hours(&parsed.describe()).describe(),
                        parsed.describe(),
                        "{s:?}"
                    );
                }
                count += 1;
            }
        }
        assert_eq!(count, 14 + 14 * 14 + 14 * 14 * 14 + 14 * 14 * 14 * 14);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(hours in "\\PC{0,40}", timezone in "\\PC{0,24}") {
            let _ = BusinessHours::parse(&hours, &timezone);
        }

        #[test]
        fn parsed_hours_describe_round_trips(text in "[a-zA-Zé0-9:;, \\-]{0,40}") {
            if let Ok(parsed) = BusinessHours::parse(&text, TORONTO) {
                let described = parsed.describe();
                proptest::prop_assert_eq!(hours(&described).describe(), described);
            }
        }

        #[test]
        fn is_open_at_never_panics(seconds in -377_705_116_800_i64..=253_402_300_799_i64) {
            if let Ok(at) = OffsetDateTime::from_unix_timestamp(seconds) {
                let _ = BusinessHours::default().is_open_at(at);
            }
        }
    }
}
