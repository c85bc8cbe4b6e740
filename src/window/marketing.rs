//! The marketing preference (specification, section 1): whether a contact accepts marketing
//! templates. Pure, like the window rules: the statements carry Meta's timestamps and the
//! outcome does not depend on the order they are processed in.
//!
//! - A `user_preferences` item (`marketing_messages`) states it: `stop` opts out, `resume`
//!   opts back in. A `failed` send with error 131050 also states "opted out".
//! - The later timestamp wins. At the same second opting out wins, so two statements of one
//!   second give the same answer in either order, and the cautious one.
//! - A contact nobody stated anything about is opted in (Meta's default).
//! - Only a change of the value is announced; a later statement of the same value just moves
//!   `since`, so that older statements arriving late stay outdated.

use serde::{Deserialize, Serialize};

use crate::domain::UnixSeconds;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marketing {
    #[default]
    OptedIn,
    OptedOut,
}

impl Marketing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedIn => "opted_in",
            Self::OptedOut => "opted_out",
        }
    }
}

/// Where a statement came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreferenceSource {
    /// The customer's own `stop` / `resume` (`user_preferences` webhook field).
    #[serde(rename = "user_preferences")]
    UserPreferences,
    /// Meta refused a marketing send: "user stopped marketing messages".
    #[serde(rename = "error_131050")]
    Error131050,
}

impl PreferenceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserPreferences => "user_preferences",
            Self::Error131050 => "error_131050",
        }
    }
}

/// One statement of the preference, and also the preference as it stands (the statement that
/// decided it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketingPreference {
    pub marketing: Marketing,
    /// Meta's timestamp of the deciding statement.
    pub since: UnixSeconds,
    pub source: PreferenceSource,
}

impl MarketingPreference {
    /// Does this statement decide over `current`?
    fn supersedes(&self, current: &Self) -> bool {
        self.since > current.since
            || (self.since == current.since
                && self.marketing == Marketing::OptedOut
                && current.marketing == Marketing::OptedIn)
    }

    /// Applies `statement` to a contact's `current` preference. Returns the new preference
    /// when its value changed, which is what gets announced.
    pub fn apply(current: &mut Option<Self>, statement: Self) -> Option<Self> {
        let before = effective(current.as_ref());
        if current.is_some_and(|current| !statement.supersedes(&current)) {
            return None;
        }
        *current = Some(statement);
        (statement.marketing != before).then_some(statement)
    }
}

/// The preference in force: opted in unless stated otherwise.
pub fn effective(preference: Option<&MarketingPreference>) -> Marketing {
    preference.map_or(Marketing::OptedIn, |p| p.marketing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stated(marketing: Marketing, since: i64) -> MarketingPreference {
        MarketingPreference {
            marketing,
            since: UnixSeconds(since),
            source: PreferenceSource::UserPreferences,
        }
    }

    fn run(statements: &[MarketingPreference]) -> (Option<MarketingPreference>, Vec<Marketing>) {
        let mut current = None;
        let changes = statements
            .iter()
            .filter_map(|s| MarketingPreference::apply(&mut current, *s))
            .map(|p| p.marketing)
            .collect();
        (current, changes)
    }

    #[test]
    fn stop_then_resume_announces_each_change() {
        use Marketing::*;
        let (now, changes) = run(&[stated(OptedOut, 10), stated(OptedIn, 20)]);
        assert_eq!(changes, [OptedOut, OptedIn]);
        assert_eq!(now.map(|p| p.since), Some(UnixSeconds(20)));
    }

    #[test]
    fn an_older_statement_arriving_late_changes_nothing() {
        use Marketing::*;
        let (now, changes) = run(&[stated(OptedIn, 20), stated(OptedOut, 10)]);
        assert_eq!(changes, [], "opted in was already the default");
        assert_eq!(effective(now.as_ref()), OptedIn);
    }

    #[test]
    fn a_duplicate_is_announced_once() {
        let stop = stated(Marketing::OptedOut, 10);
        let (_, changes) = run(&[stop, stop, stop]);
        assert_eq!(changes, [Marketing::OptedOut]);
    }

    #[test]
    fn a_repeated_value_moves_since_quietly() {
        use Marketing::*;
        let (now, changes) = run(&[
            stated(OptedOut, 10),
            stated(OptedOut, 30),
            stated(OptedIn, 20),
        ]);
        assert_eq!(changes, [OptedOut]);
        assert_eq!(now.map(|p| (p.marketing, p.since.0)), Some((OptedOut, 30)));
    }

    #[test]
    fn within_one_second_opting_out_wins_in_either_order() {
        use Marketing::*;
        for order in [
            [stated(OptedIn, 10), stated(OptedOut, 10)],
            [stated(OptedOut, 10), stated(OptedIn, 10)],
        ] {
            let (now, _) = run(&order);
            assert_eq!(effective(now.as_ref()), OptedOut, "{order:?}");
        }
    }

    fn statement() -> impl Strategy<Value = MarketingPreference> {
        (any::<bool>(), 0i64..4, any::<bool>()).prop_map(|(out, since, by_error)| {
            MarketingPreference {
                marketing: if out {
                    Marketing::OptedOut
                } else {
                    Marketing::OptedIn
                },
                since: UnixSeconds(since),
                source: if by_error {
                    PreferenceSource::Error131050
                } else {
                    PreferenceSource::UserPreferences
                },
            }
        })
    }

    proptest! {
        /// Duplicates and any order: the same value and the same deciding timestamp. (The
        /// source can differ when two sources state the same value in the same second.)
        #[test]
        fn any_order_ends_in_the_same_preference(
            (first, second) in prop::collection::vec(statement(), 0..8).prop_flat_map(|v| {
                (Just(v.clone()).prop_shuffle(), Just(v).prop_shuffle())
            })
        ) {
            let decided = |s: &[MarketingPreference]| {
                run(s).0.map(|p| (p.marketing, p.since))
            };
            prop_assert_eq!(decided(&first), decided(&second));
        }
    }
}
