//! Timestamps that cannot be right (specification, section 1): a Meta `timestamp` more than
//! five minutes ahead of when the receiver accepted it, or older than 30 days, is never
//! applied to a window. A timestamp in milliseconds lands thousands of years ahead, a negative
//! one decades back: both are refused here, so one bad item cannot poison a contact.

use crate::domain::UnixSeconds;

/// How far ahead of its acceptance a timestamp may be (clock skew between Meta and us).
pub const MAX_AHEAD_SECS: i64 = 5 * 60;
/// How old a timestamp may be when accepted (Meta retries for 7 days; 30 leaves room).
pub const MAX_AGE_SECS: i64 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implausible {
    Ahead,
    TooOld,
    /// Not a whole number of seconds at all (a fraction, text, missing).
    Unreadable,
}

impl Implausible {
    /// The `reason` label of `windowkeeper_rejected_inputs_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Ahead => "timestamp_ahead",
            Self::TooOld => "timestamp_too_old",
            Self::Unreadable => "timestamp_unreadable",
        }
    }
}

/// Whether Meta's timestamp `at` is believable for an item accepted at `accepted`.
pub fn check(at: UnixSeconds, accepted: UnixSeconds) -> Result<(), Implausible> {
    if at.0 > accepted.0.saturating_add(MAX_AHEAD_SECS) {
        Err(Implausible::Ahead)
    } else if at.0 < accepted.0.saturating_sub(MAX_AGE_SECS) {
        Err(Implausible::TooOld)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const ACCEPTED: i64 = 1_795_250_000;

    proptest::proptest! {
        #[test]
        fn applied_exactly_when_within_the_bounds(offset in -(MAX_AGE_SECS * 3)..(MAX_AGE_SECS * 3)) {
            let verdict = check(UnixSeconds(ACCEPTED + offset), UnixSeconds(ACCEPTED));
            let believable = (-MAX_AGE_SECS..=MAX_AHEAD_SECS).contains(&offset);
            proptest::prop_assert_eq!(verdict.is_ok(), believable);
        }
    }

    #[test]
    fn bounds_are_inclusive_and_milliseconds_are_refused() {
        assert_eq!(check(UnixSeconds(ACCEPTED), UnixSeconds(ACCEPTED)), Ok(()));
        assert_eq!(
            check(
                UnixSeconds(ACCEPTED + MAX_AHEAD_SECS),
                UnixSeconds(ACCEPTED)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                UnixSeconds(ACCEPTED + MAX_AHEAD_SECS + 1),
                UnixSeconds(ACCEPTED)
            ),
            Err(Implausible::Ahead)
        );
        assert_eq!(
            check(UnixSeconds(ACCEPTED - MAX_AGE_SECS), UnixSeconds(ACCEPTED)),
            Ok(())
        );
        assert_eq!(
            check(
                UnixSeconds(ACCEPTED - MAX_AGE_SECS - 1),
                UnixSeconds(ACCEPTED)
            ),
            Err(Implausible::TooOld)
        );
        assert_eq!(
            check(UnixSeconds(ACCEPTED * 1000), UnixSeconds(ACCEPTED)),
            Err(Implausible::Ahead)
        );
        assert_eq!(
            check(UnixSeconds(-ACCEPTED), UnixSeconds(ACCEPTED)),
            Err(Implausible::TooOld)
        );
    }
}
