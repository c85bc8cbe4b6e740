//! The send decision, pure: a contact's windows and preference, the pricing rules and the
//! instant asked about go in; the answer of specification section 5 comes out. No I/O and no
//! clock, so every answer is pinned by tests.
//!
//! Everything is judged at `as_of`, the moment of the question: a window the state still
//! shows open but whose end has passed is reported closed (`expired`), since Meta would refuse
//! a free-form message now even if the tracker has not yet processed the close.

use serde::{Deserialize, Serialize};

use super::pricing::{Category, OpenWindows, PricingRules};
use crate::domain::{CustomerId, PhoneNumberId, UnixSeconds};
use crate::window::{CloseReason, Marketing, MarketingPreference, PreferenceSource, WindowKind};

pub use crate::window::WindowSummary;

impl WindowSummary {
    /// The window as it stands at `now`: open only while its end is ahead.
    fn at(self, now: UnixSeconds) -> Self {
        if self.open && self.expires_at <= now {
            Self {
                open: false,
                close_reason: Some(CloseReason::Expired),
                ..self
            }
        } else {
            self
        }
    }
}

/// What is known of one contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactFacts {
    pub user_id: Option<String>,
    pub wa_id: Option<String>,
    /// By [`WindowKind::ALL`] order.
    pub windows: [Option<WindowSummary>; 3],
    pub marketing: Option<MarketingPreference>,
}

impl ContactFacts {
    fn window(&self, kind: WindowKind) -> Option<WindowSummary> {
        let index = WindowKind::ALL.iter().position(|k| *k == kind)?;
        self.windows[index]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDecision {
    pub phone_number_id: String,
    pub user_id: Option<String>,
    pub wa_id: Option<String>,
    pub known: bool,
    pub as_of: String,
    pub windows: Windows,
    pub marketing: Marketing,
    pub marketing_since: Option<String>,
    pub marketing_source: Option<PreferenceSource>,
    pub send: Send,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    pub customer_service: Option<WindowOut>,
    pub free_entry_point: Option<WindowOut>,
    pub free_entry_offer: Option<WindowOut>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowOut {
    pub open: bool,
    pub opened_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Send {
    pub free_form: FreeForm,
    pub template: Templates,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeForm {
    pub allowed: bool,
    pub until: Option<String>,
    /// Whether a free-form (service) message sent now is billed.
    pub charged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Templates {
    pub marketing: TemplateDecision,
    pub utility: TemplateDecision,
    pub authentication: TemplateDecision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDecision {
    pub allowed: bool,
    pub charged: bool,
}

/// Answers for one contact at `now`. `facts` is `None` for a contact nothing is known about.
pub fn decide(
    phone_number_id: &PhoneNumberId,
    customer: &CustomerId,
    facts: Option<&ContactFacts>,
    now: UnixSeconds,
    rules: &PricingRules,
) -> ContactDecision {
    let known = facts.is_some();
    let unknown = ContactFacts::default();
    let facts = facts.unwrap_or(&unknown);
    let (user_id, wa_id) = match (known, customer) {
        (true, _) => (facts.user_id.clone(), facts.wa_id.clone()),
        (false, CustomerId::User(user)) => (Some(user.as_str().to_owned()), None),
        (false, CustomerId::Phone(wa_id)) => (None, Some(wa_id.as_str().to_owned())),
    };
    let window = |kind| facts.window(kind).map(|w| w.at(now));
    let service = window(WindowKind::CustomerService);
    let entry = window(WindowKind::FreeEntryPoint);
    let offer = window(WindowKind::FreeEntryOffer);
    let is_open = |w: Option<WindowSummary>| w.is_some_and(|w| w.open);
    let open = OpenWindows {
        customer_service: is_open(service),
        free_entry_point: is_open(entry),
    };
    let marketing = crate::window::marketing::effective(facts.marketing.as_ref());
    let charged = |category| rules.charged(category, open, now);
    let template = |category, allowed| TemplateDecision {
        allowed,
        charged: charged(category),
    };
    let free_form_until = service.filter(|w| w.open).map(|w| w.expires_at);
    ContactDecision {
        phone_number_id: phone_number_id.as_str().to_owned(),
        user_id,
        wa_id,
        known,
        as_of: now.to_rfc3339(),
        windows: Windows {
            customer_service: service.map(window_out),
            free_entry_point: entry.map(window_out),
            free_entry_offer: offer.map(window_out),
        },
        marketing,
        marketing_since: facts.marketing.map(|p| p.since.to_rfc3339()),
        marketing_source: facts.marketing.map(|p| p.source),
        send: Send {
            free_form: FreeForm {
                allowed: open.customer_service,
                until: free_form_until.map(UnixSeconds::to_rfc3339),
                charged: charged(Category::Service),
            },
            template: Templates {
                marketing: template(Category::Marketing, marketing == Marketing::OptedIn),
                utility: template(Category::Utility, true),
                authentication: template(Category::Authentication, true),
            },
            reason: reason(known, service, entry, offer, facts.marketing.as_ref()),
        },
    }
}

fn window_out(w: WindowSummary) -> WindowOut {
    WindowOut {
        open: w.open,
        opened_at: w.opened_at.to_rfc3339(),
        expires_at: w.expires_at.to_rfc3339(),
        close_reason: if w.open {
            None
        } else {
            w.close_reason.or(Some(CloseReason::Expired))
        },
    }
}

/// One sentence: why free-form is or is not allowed, then what else limits the sender.
fn reason(
    known: bool,
    service: Option<WindowSummary>,
    entry: Option<WindowSummary>,
    offer: Option<WindowSummary>,
    marketing: Option<&MarketingPreference>,
) -> String {
    let mut reason = match service {
        Some(w) if w.open => format!(
            "customer service window open until {}",
            w.expires_at.to_rfc3339()
        ),
        Some(w) => format!(
            "customer service window closed at {}: templates only",
            w.expires_at.to_rfc3339()
        ),
        None if known => "no customer service window: templates only".to_owned(),
        None => "no messages from this contact: templates only".to_owned(),
    };
    if let Some(w) = entry.filter(|w| w.open) {
        reason.push_str(&format!(
            "; free entry point window open until {}: sends are free",
            w.expires_at.to_rfc3339()
        ));
    }
    if let Some(w) = offer.filter(|w| w.open) {
        reason.push_str(&format!(
            "; replying before {} opens a free entry point window",
            w.expires_at.to_rfc3339()
        ));
    }
    if let Some(p) = marketing.filter(|p| p.marketing == Marketing::OptedOut) {
        reason.push_str(&format!(
            "; marketing templates blocked: the contact opted out at {}",
            p.since.to_rfc3339()
        ));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_115_600; // 2026-12-01T09:00:00Z, under the 2026-10-01 rules
    const JULY_2026: i64 = 1_782_896_400; // 2026-07-01T09:00:00Z, under the 2025-07-01 rules

    fn pnid() -> PhoneNumberId {
        PhoneNumberId::new("106540352242922")
    }

    fn bsuid() -> CustomerId {
        CustomerId::parse("US.13491208655302741918").expect("a BSUID")
    }

    fn open(opened_at: i64, expires_at: i64) -> Option<WindowSummary> {
        Some(WindowSummary {
            open: true,
            opened_at: UnixSeconds(opened_at),
            expires_at: UnixSeconds(expires_at),
            close_reason: None,
        })
    }

    fn facts(
        service: Option<WindowSummary>,
        entry: Option<WindowSummary>,
        offer: Option<WindowSummary>,
    ) -> ContactFacts {
        ContactFacts {
            user_id: Some("US.13491208655302741918".into()),
            wa_id: Some("16505551234".into()),
            windows: [service, entry, offer],
            marketing: None,
        }
    }

    fn ask(facts: Option<&ContactFacts>, now: i64) -> ContactDecision {
        decide(
            &pnid(),
            &bsuid(),
            facts,
            UnixSeconds(now),
            &PricingRules::built_in(),
        )
    }

    fn charges(d: &ContactDecision) -> [bool; 4] {
        let t = &d.send.template;
        [
            d.send.free_form.charged,
            t.marketing.charged,
            t.utility.charged,
            t.authentication.charged,
        ]
    }

    #[test]
    fn an_unknown_contact_may_get_templates_only_all_charged() {
        let d = ask(None, NOW);
        assert!(!d.known);
        assert_eq!(d.user_id.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(d.wa_id, None);
        assert_eq!(
            (
                d.windows.customer_service.clone(),
                d.windows.free_entry_point.clone(),
                d.windows.free_entry_offer.clone()
            ),
            (None, None, None)
        );
        assert!(!d.send.free_form.allowed);
        assert_eq!(d.send.free_form.until, None);
        assert_eq!(d.marketing, Marketing::OptedIn);
        assert!(d.send.template.marketing.allowed);
        assert_eq!(charges(&d), [true; 4]);
        assert_eq!(d.as_of, "2026-12-01T09:00:00Z");
    }

    #[test]
    fn an_open_service_window_allows_free_form_until_its_end() {
        let f = facts(open(NOW - 3600, NOW + 3600), None, None);
        let d = ask(Some(&f), NOW);
        assert!(d.send.free_form.allowed);
        assert_eq!(
            d.send.free_form.until.as_deref(),
            Some("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            d.send.reason,
            "customer service window open until 2026-12-01T10:00:00Z"
        );
        // Since 2026-10-01 service and utility are charged in the window too.
        assert_eq!(charges(&d), [true; 4]);
        // Under the 2025-07-01 rules they were free.
        let f = facts(open(JULY_2026 - 3600, JULY_2026 + 3600), None, None);
        assert_eq!(
            charges(&ask(Some(&f), JULY_2026)),
            [false, true, false, true]
        );
    }

    #[test]
    fn a_window_past_its_end_is_closed_even_before_the_tracker_says_so() {
        let f = facts(open(NOW - 86_400, NOW), None, None);
        let d = ask(Some(&f), NOW);
        assert!(!d.send.free_form.allowed);
        let w = d.windows.customer_service.expect("shown");
        assert!(!w.open);
        assert_eq!(w.close_reason, Some(CloseReason::Expired));
        assert_eq!(
            d.send.reason,
            "customer service window closed at 2026-12-01T09:00:00Z: templates only"
        );
    }

    #[test]
    fn a_free_entry_point_makes_sends_free_but_never_allows_free_form_alone() {
        let f = facts(None, open(NOW - 3600, NOW + 86_400), None);
        let d = ask(Some(&f), NOW);
        assert!(!d.send.free_form.allowed);
        assert_eq!(charges(&d), [false; 4]);
        assert!(d.send.reason.contains("free entry point window open until"));
    }

    #[test]
    fn an_open_offer_tells_the_sender_to_reply_in_time() {
        let f = facts(
            open(NOW - 60, NOW + 86_340),
            None,
            open(NOW - 60, NOW + 86_340),
        );
        let d = ask(Some(&f), NOW);
        assert!(d.windows.free_entry_offer.expect("shown").open);
        assert!(d
            .send
            .reason
            .ends_with("; replying before 2026-12-02T08:59:00Z opens a free entry point window"));
    }

    #[test]
    fn an_opted_out_contact_gets_no_marketing_templates() {
        let mut f = facts(open(NOW - 60, NOW + 600), None, None);
        f.marketing = Some(MarketingPreference {
            marketing: Marketing::OptedOut,
            since: UnixSeconds(NOW - 86_400),
            source: PreferenceSource::UserPreferences,
        });
        let d = ask(Some(&f), NOW);
        assert_eq!(d.marketing, Marketing::OptedOut);
        assert_eq!(d.marketing_since.as_deref(), Some("2026-11-30T09:00:00Z"));
        assert_eq!(d.marketing_source, Some(PreferenceSource::UserPreferences));
        assert!(!d.send.template.marketing.allowed);
        assert!(d.send.template.utility.allowed);
        assert!(d.send.free_form.allowed);
        assert!(d.send.reason.ends_with(
            "; marketing templates blocked: the contact opted out at 2026-11-30T09:00:00Z"
        ));
    }

    #[test]
    fn closed_windows_keep_their_reason() {
        let converted = Some(WindowSummary {
            open: false,
            opened_at: UnixSeconds(NOW - 7200),
            expires_at: UnixSeconds(NOW - 3600),
            close_reason: Some(CloseReason::Converted),
        });
        let d = ask(Some(&facts(None, None, converted)), NOW);
        let offer = d.windows.free_entry_offer.expect("shown");
        assert_eq!(offer.close_reason, Some(CloseReason::Converted));
        let json = serde_json::to_value(&offer).expect("JSON");
        assert_eq!(json["close_reason"], "converted");
    }
}
