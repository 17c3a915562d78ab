//! RFC 3339 time stamps from a `Timestamp`, without a date library.
//!
//! Connectors stamp what they send (`sent_at` of the generic webhook) with the caller's
//! `now`: this crate reads no wall clock, so tests and the simulator decide what time it
//! is. The conversion is the civil calendar (proleptic Gregorian) from a day count,
//! done with eras of 400 years, which repeat exactly.

use stockpool_core::Timestamp;

const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 (the start of an era, counted from March so the leap day is last)
/// to 1970-01-01.
const EPOCH_FROM_ERA_START_DAYS: i64 = 719_468;

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds), for years 0 to 9999.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    let seconds = at.0.div_euclid(1000);
    let millis = at.0.rem_euclid(1000);
    let (year, month, day) = civil_date(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let since_era_zero = days + EPOCH_FROM_ERA_START_DAYS;
    let era = since_era_zero.div_euclid(DAYS_PER_ERA);
    let day_of_era = since_era_zero.rem_euclid(DAYS_PER_ERA);
    // Every 4th year is a leap year, except every 100th, except every 400th; the era's
    // last day (day 146096) belongs to year 399.
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / (DAYS_PER_ERA - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, then February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let check = |ms: i64, expected: &str| assert_eq!(rfc3339(Timestamp(ms)), expected, "{ms}");
        check(0, "1970-01-01T00:00:00.000Z");
        check(-1, "1969-12-31T23:59:59.999Z");
        check(951_782_400_000, "2000-02-29T00:00:00.000Z");
        check(951_868_800_000, "2000-03-01T00:00:00.000Z");
        check(1_709_164_800_123, "2024-02-29T00:00:00.123Z");
        check(1_714_564_800_000, "2024-05-01T12:00:00.000Z");
        check(4_102_444_799_999, "2099-12-31T23:59:59.999Z");
        check(4_107_542_400_000, "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_follows_the_last() {
        // Walks day by day from 1900 to 2099 (leap rules of 4, 100 and 400 included) and
        // checks each date is the one after the previous.
        let days_in = |y: i64, m: i64| match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut expected = (1900, 1, 1);
        for days in -25_567..47_482 {
            assert_eq!(civil_date(days), expected, "{days}");
            let (y, m, d) = expected;
            expected = if d < days_in(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}
