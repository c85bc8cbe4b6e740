//! Meta's pricing rules as data with effective dates (specification, section 5). Meta changes
//! them (per-message pricing from 2025-07-01; service and in-window utility charged from
//! 2026-10-01), so no branch of the code knows a date or a price: a rule period lists, per
//! window kind, the message categories that are free while that window is open. Anything not
//! listed is charged. The built-in rules are `pricing-rules.json` beside this file, in the same
//! format `--pricing-rules FILE` takes.

use std::path::Path;

use serde::Deserialize;

use crate::domain::UnixSeconds;

const BUILT_IN: &str = include_str!("pricing-rules.json");

/// What a business can send: a free-form (service) message or a template of a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Service,
    Marketing,
    Utility,
    Authentication,
}

/// Which open windows make a send free.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeInside {
    #[serde(default)]
    pub customer_service: Vec<Category>,
    #[serde(default)]
    pub free_entry_point: Vec<Category>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulePeriod {
    pub effective_from: UnixSeconds,
    pub free_inside: FreeInside,
}

/// The rule periods, in order of `effective_from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricingRules {
    periods: Vec<RulePeriod>,
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    effective_from: String,
    /// Free text for the reader of the file.
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    free_inside: FreeInside,
}

/// Which windows are open when a send is priced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenWindows {
    pub customer_service: bool,
    pub free_entry_point: bool,
}

impl PricingRules {
    /// The rules this build ships with.
    pub fn built_in() -> Self {
        match Self::parse(BUILT_IN) {
            Ok(rules) => rules,
            // A test parses the built-in file, so this cannot happen in a released build.
            Err(reason) => panic!("built-in pricing rules are invalid: {reason}"),
        }
    }

    /// Reads a rules file (the format of the built-in `pricing-rules.json`).
    pub fn from_file(path: &Path) -> Result<Self, PricingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| PricingError::Invalid {
            path: shown,
            reason,
        })
    }

    /// Parses and checks a rules document; the error is one line for the operator.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RulesFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if file.rules.is_empty() {
            return Err("no rules: at least one period is needed".into());
        }
        let mut periods = Vec::with_capacity(file.rules.len());
        for entry in file.rules {
            let effective_from = chrono::DateTime::parse_from_rfc3339(&entry.effective_from)
                .map_err(|e| {
                    format!(
                        "effective_from {:?} is not an RFC 3339 instant: {e}",
                        entry.effective_from
                    )
                })?;
            let effective_from = UnixSeconds(effective_from.timestamp());
            if let Some(previous) = periods.last().map(|p: &RulePeriod| p.effective_from) {
                if effective_from <= previous {
                    return Err(format!(
                        "effective_from {} is not after the rule before it ({}): list rules oldest first",
                        entry.effective_from,
                        previous.to_rfc3339()
                    ));
                }
            }
            periods.push(RulePeriod {
                effective_from,
                free_inside: entry.free_inside,
            });
        }
        Ok(Self { periods })
    }

    /// The period in force at `at`; `None` before the first one.
    pub fn in_force(&self, at: UnixSeconds) -> Option<&RulePeriod> {
        self.periods.iter().rev().find(|p| p.effective_from <= at)
    }

    /// Whether a send of `category` at `at`, with these windows open, is charged. Before the
    /// first period everything is charged: the cautious answer for a cost.
    pub fn charged(&self, category: Category, open: OpenWindows, at: UnixSeconds) -> bool {
        let Some(period) = self.in_force(at) else {
            return true;
        };
        let free = &period.free_inside;
        let free_in_service = open.customer_service && free.customer_service.contains(&category);
        let free_in_entry = open.free_entry_point && free.free_entry_point.contains(&category);
        !(free_in_service || free_in_entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(rfc3339: &str) -> UnixSeconds {
        UnixSeconds(
            chrono::DateTime::parse_from_rfc3339(rfc3339)
                .expect("instant")
                .timestamp(),
        )
    }

    const NONE: OpenWindows = OpenWindows {
        customer_service: false,
        free_entry_point: false,
    };
    const CSW: OpenWindows = OpenWindows {
        customer_service: true,
        free_entry_point: false,
    };
    const FEP: OpenWindows = OpenWindows {
        customer_service: false,
        free_entry_point: true,
    };

    /// Every answer of the built-in rules, per period, at a fixed clock.
    #[test]
    fn built_in_rules_per_period() {
        use Category::*;
        let rules = PricingRules::built_in();
        let table = |at: &str| {
            let at = instant(at);
            [Service, Marketing, Utility, Authentication]
                .map(|c| [NONE, CSW, FEP].map(|open| rules.charged(c, open, at)))
        };
        // Before per-message pricing: no rule, everything charged.
        assert_eq!(table("2025-06-30T23:59:59Z"), [[true; 3]; 4]);
        // From 2025-07-01: service and utility free in the CSW, everything free in an FEP.
        assert_eq!(
            table("2025-07-01T00:00:00Z"),
            [
                [true, false, false],
                [true, true, false],
                [true, false, false],
                [true, true, false],
            ]
        );
        assert_eq!(table("2026-09-30T23:59:59Z"), table("2025-07-01T00:00:00Z"));
        // From 2026-10-01: nothing is free in the CSW; the FEP stays free.
        assert_eq!(
            table("2026-10-01T00:00:00Z"),
            [
                [true, true, false],
                [true, true, false],
                [true, true, false],
                [true, true, false],
            ]
        );
    }

    #[test]
    fn a_rules_file_replaces_the_built_in_rules() {
        let rules = PricingRules::parse(
            r#"{"rules": [{"effective_from": "2027-01-01T00:00:00Z",
                "free_inside": {"customer_service": ["service"]}}]}"#,
        )
        .expect("valid");
        let at = instant("2027-02-01T00:00:00Z");
        assert!(!rules.charged(Category::Service, CSW, at));
        assert!(rules.charged(Category::Utility, CSW, at));
        assert!(
            rules.charged(Category::Marketing, FEP, at),
            "FEP not listed"
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, expected) in [
            ("not json", "expected"),
            (r#"{"rules": []}"#, "no rules"),
            (
                r#"{"rules": [{"effective_from": "July", "free_inside": {}}]}"#,
                "RFC 3339",
            ),
            (
                r#"{"rules": [{"effective_from": "2026-01-01T00:00:00Z", "free_inside": {"customer_service": ["gifts"]}}]}"#,
                "unknown variant",
            ),
            (
                r#"{"rules": [{"effective_from": "2026-01-01T00:00:00Z", "free_inside": {}, "typo": 1}]}"#,
                "unknown field",
            ),
            (
                r#"{"rules": [{"effective_from": "2026-01-01T00:00:00Z", "free_inside": {}},
                              {"effective_from": "2025-01-01T00:00:00Z", "free_inside": {}}]}"#,
                "oldest first",
            ),
        ] {
            let error = PricingRules::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
