//! Unit tests of the window rules. Durations are short (CSW 100 s, FEP 300 s, leads 50/20/5 s)
//! so the arithmetic stays readable.
//!
//! One long file on purpose: read top to bottom, section by section, it is the rules'
//! specification by example.

use super::*;
use crate::domain::{MessageId, UnixSeconds};

fn cfg() -> WindowConfig {
    WindowConfig::new(100, 300, [50, 20, 5], false)
}

fn at(secs: i64) -> UnixSeconds {
    UnixSeconds(secs)
}

fn msg(id: &str, secs: i64) -> Input {
    Input::CustomerMessage {
        id: MessageId::new(id),
        at: at(secs),
        referral: false,
    }
}

fn referral(id: &str, secs: i64) -> Input {
    Input::CustomerMessage {
        id: MessageId::new(id),
        at: at(secs),
        referral: true,
    }
}

fn sent(secs: i64) -> Input {
    Input::BusinessSent {
        id: MessageId::new(format!("wamid.out{secs}")),
        at: at(secs),
        fep_expires_at: None,
    }
}

fn sent_meta(secs: i64, expires: i64) -> Input {
    Input::BusinessSent {
        id: MessageId::new(format!("wamid.out{secs}")),
        at: at(secs),
        fep_expires_at: Some(at(expires)),
    }
}

fn failed(secs: i64) -> Input {
    Input::ReEngagementFailed { at: at(secs) }
}

/// One contact driven by hand.
struct Contact {
    state: ContactWindows,
    cfg: WindowConfig,
}

impl Contact {
    fn new() -> Self {
        Self::with(cfg())
    }

    fn with(cfg: WindowConfig) -> Self {
        Self {
            state: ContactWindows::default(),
            cfg,
        }
    }

    fn apply(&mut self, input: Input, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        self.state.apply(&input, at(now), &self.cfg, &mut out);
        out.iter().map(show).collect()
    }

    fn tick(&mut self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        self.state.tick(at(now), &self.cfg, &mut out);
        out.iter().map(show).collect()
    }

    fn deadline(&self) -> Option<i64> {
        self.state.next_deadline(&self.cfg).map(|t| t.0)
    }

    fn csw(&self) -> Option<(i64, i64, Option<String>)> {
        self.state
            .customer_service()
            .filter(WindowView::is_open)
            .map(|v| {
                (
                    v.opened_at.0,
                    v.expires_at.0,
                    v.last_inbound_message_id.map(|id| id.to_string()),
                )
            })
    }

    fn fep(&self) -> Option<(i64, i64)> {
        self.state
            .free_entry_point()
            .filter(WindowView::is_open)
            .map(|v| (v.opened_at.0, v.expires_at.0))
    }
}

/// `id_suffix`, plus the end on `opened` and the reason and end on `closed`.
fn show(event: &WindowEvent) -> String {
    let id = event.id_suffix();
    match event.event {
        EventType::Opened => format!("{id}:{}", event.expires_at.0),
        EventType::Closing { .. } => id,
        EventType::Closed { reason } => format!("{id}:{}:{}", reason.as_str(), event.expires_at.0),
    }
}

fn none() -> Vec<String> {
    Vec::new()
}

/// Only the free entry point events (referral messages open a CSW too).
/// No identity of an old id is riding along any more.
fn no_merged_identities(state: &ContactWindows) -> bool {
    WindowKind::ALL
        .into_iter()
        .all(|kind| state.merged_opened_at(kind).next().is_none())
}

fn fep_only(events: Vec<String>) -> Vec<String> {
    events
        .into_iter()
        .filter(|e| e.starts_with("free_entry_point"))
        .collect()
}

// ----- configuration -----

#[test]
fn openers_are_every_customer_message_but_system_revoke_and_reaction() {
    let cfg = cfg();
    for opener in [
        "text",
        "image",
        "button",
        "interactive",
        "request_welcome",
        "order",
        "unsupported",
        "some_future_type",
    ] {
        assert!(message_opens_window(opener, &cfg), "{opener}");
    }
    for other in ["system", "revoke", "reaction"] {
        assert!(!message_opens_window(other, &cfg), "{other}");
    }
    let reactions_count = WindowConfig {
        reactions_open_window: true,
        ..cfg
    };
    assert!(message_opens_window("reaction", &reactions_count));
    assert!(!message_opens_window("system", &reactions_count));
}

#[test]
fn leads_are_normalized_largest_first_positive_and_unique() {
    let cfg = WindowConfig::new(100, 300, [5, 50, 0, -1, 20, 50], false);
    assert_eq!(cfg.closing_leads_secs, vec![50, 20, 5]);
    let defaults = WindowConfig::default();
    assert_eq!(defaults.service_window_secs, 86_400);
    assert_eq!(defaults.free_entry_window_secs, 259_200);
    assert_eq!(defaults.closing_leads_secs, vec![3600]);
    assert!(!defaults.reactions_open_window);
}

#[test]
fn leads_are_read_as_a_set_even_when_the_config_was_not_normalized() {
    let raw = WindowConfig {
        closing_leads_secs: vec![5, 50, 0, 20, -3, 50],
        ..cfg()
    };
    let mut tidy = Contact::new();
    let mut messy = Contact::with(raw);
    for c in [&mut tidy, &mut messy] {
        c.apply(msg("m1", 10), 12);
    }
    for now in [60, 90, 105, 110] {
        assert_eq!(messy.tick(now), tidy.tick(now), "at {now}");
    }
    assert_eq!(messy.state, tidy.state);
}

#[test]
fn at_most_max_closing_leads_are_used() {
    let many = WindowConfig::new(10_000, 30_000, 1..=100, false);
    assert_eq!(many.closing_leads_secs.len(), MAX_CLOSING_LEADS);
    assert_eq!(many.closing_leads_secs.first(), Some(&100));
    let mut c = Contact::with(many);
    c.apply(msg("m1", 0), 1);
    assert_eq!(c.tick(9_999).len(), MAX_CLOSING_LEADS);
    assert_eq!(c.tick(10_000), ["customer_service:0:closed:expired:10000"]);
}

// ----- customer service window -----

#[test]
fn a_customer_message_opens_the_window_at_its_own_timestamp() {
    let mut c = Contact::new();
    assert_eq!(
        c.apply(msg("m1", 10), 12),
        ["customer_service:10:opened:110"]
    );
    assert_eq!(c.csw(), Some((10, 110, Some("m1".into()))));
    assert_eq!(c.fep(), None);
}

#[test]
fn a_message_whose_window_is_over_on_arrival_opens_nothing() {
    let mut c = Contact::new();
    assert_eq!(c.apply(msg("m1", 10), 110), none());
    assert_eq!(c.csw(), None);
    assert_eq!(
        c.apply(msg("m1", 10), 109),
        ["customer_service:10:opened:110"]
    );
}

#[test]
fn warnings_then_close_exactly_once() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    assert_eq!(c.deadline(), Some(60));
    assert_eq!(c.tick(59), none());
    assert_eq!(c.tick(60), ["customer_service:10:closing:50:110"]);
    assert_eq!(c.tick(61), none());
    assert_eq!(c.deadline(), Some(90));
    assert_eq!(c.tick(90), ["customer_service:10:closing:20:110"]);
    assert_eq!(c.tick(105), ["customer_service:10:closing:5:110"]);
    assert_eq!(c.deadline(), Some(110));
    assert_eq!(c.tick(109), none());
    assert_eq!(c.tick(110), ["customer_service:10:closed:expired:110"]);
    assert_eq!(c.tick(500), none());
    assert_eq!(c.deadline(), None);
    assert_eq!(c.csw(), None);
}

#[test]
fn only_leads_still_ahead_at_opening_are_warned() {
    let mut c = Contact::new();
    // Processed at 65: the 50 s lead's time (60) has passed already.
    c.apply(msg("m1", 10), 65);
    assert_eq!(c.deadline(), Some(90));
    assert_eq!(c.tick(90), ["customer_service:10:closing:20:110"]);
}

#[test]
fn an_extension_moves_the_end_and_re_arms_warnings() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    assert_eq!(c.tick(60), ["customer_service:10:closing:50:110"]);
    assert_eq!(c.apply(msg("m2", 70), 71), none());
    assert_eq!(c.csw(), Some((10, 170, Some("m2".into()))));
    assert_eq!(c.deadline(), Some(120));
    assert_eq!(c.tick(110), none(), "the old end is gone");
    assert_eq!(c.tick(120), ["customer_service:10:closing:50:170"]);
    assert_eq!(c.tick(150), ["customer_service:10:closing:20:170"]);
    assert_eq!(c.tick(170), ["customer_service:10:closed:expired:170"]);
}

#[test]
fn an_extension_after_some_warning_times_passed_re_arms_only_those_still_ahead() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    c.tick(60);
    c.tick(90);
    // New end 125: the 50 s lead's time (75) has passed at 100, the 20 s one (105) has not.
    assert_eq!(c.apply(msg("m2", 25), 100), none());
    assert_eq!(c.tick(200), ["customer_service:10:closed:expired:125"]);
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    c.tick(90);
    c.apply(msg("m2", 25), 100);
    assert_eq!(c.tick(105), ["customer_service:10:closing:20:125"]);
}

#[test]
fn duplicates_and_older_messages_change_nothing() {
    let mut c = Contact::new();
    assert_eq!(
        c.apply(msg("m2", 50), 52),
        ["customer_service:50:opened:150"]
    );
    assert_eq!(c.apply(msg("m2", 50), 53), none());
    // Older but still live: the announced identity (opened_at) does not move back.
    assert_eq!(c.apply(msg("m1", 40), 54), none());
    assert_eq!(c.csw(), Some((50, 150, Some("m2".into()))));
}

#[test]
fn a_message_processed_after_its_window_ended_opens_a_new_window() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    // Nobody ticked at 110; the message of 105 shows up at 120.
    assert_eq!(
        c.apply(msg("m2", 105), 120),
        [
            "customer_service:10:closed:expired:110",
            "customer_service:105:opened:205"
        ]
    );
    // A duplicate of the first window's message does not reopen anything.
    assert_eq!(c.apply(msg("m1", 10), 121), none());
}

#[test]
fn re_engagement_failure_closes_the_window_at_once() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    assert_eq!(
        c.apply(failed(30), 31),
        ["customer_service:10:closed:meta_reported:30"]
    );
    assert_eq!(c.csw(), None);
    assert_eq!(c.deadline(), None);
    // Messages not newer than the failure belong to the window Meta declared closed.
    assert_eq!(c.apply(msg("m0", 20), 32), none());
    assert_eq!(c.apply(msg("m1", 10), 33), none());
    assert_eq!(c.apply(msg("m3", 30), 34), none());
    assert_eq!(c.tick(500), none(), "closed exactly once");
    let mut c2 = Contact::new();
    c2.apply(msg("m1", 10), 12);
    c2.apply(failed(30), 31);
    assert_eq!(
        c2.apply(msg("m4", 40), 41),
        ["customer_service:40:opened:140"]
    );
}

#[test]
fn re_engagement_failure_older_than_the_last_message_is_ignored() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    c.apply(msg("m2", 50), 52);
    assert_eq!(c.apply(failed(30), 53), none());
    assert_eq!(c.csw(), Some((10, 150, Some("m2".into()))));
    // Same instant as the last message: the failure is not older, so it wins.
    assert_eq!(
        c.apply(failed(50), 54),
        ["customer_service:10:closed:meta_reported:50"]
    );
}

#[test]
fn re_engagement_failure_seen_first_blocks_older_messages() {
    let mut c = Contact::new();
    assert_eq!(c.apply(failed(30), 31), none());
    assert_eq!(c.apply(msg("m1", 20), 32), none());
    assert_eq!(
        c.apply(msg("m2", 31), 33),
        ["customer_service:31:opened:131"]
    );
}

#[test]
fn warnings_of_a_window_closed_by_meta_are_not_emitted() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 12);
    c.apply(failed(30), 31);
    assert_eq!(c.tick(60), none());
}

// ----- free entry point window -----

#[test]
fn a_reply_to_a_referral_opens_the_free_entry_point_window() {
    let mut c = Contact::new();
    assert_eq!(
        c.apply(referral("r", 10), 11),
        [
            "customer_service:10:opened:110",
            "free_entry_offer:10:opened:110"
        ]
    );
    assert_eq!(
        c.apply(sent(20), 21),
        [
            "free_entry_offer:10:closed:converted:20",
            "free_entry_point:20:opened:320"
        ]
    );
    assert_eq!(c.fep(), Some((20, 320)));
    assert_eq!(c.apply(sent(30), 31), none(), "only the first reply opens");
    // Independent of the CSW: it closes at its own end.
    assert_eq!(c.tick(110), ["customer_service:10:closed:expired:110"]);
    assert_eq!(c.fep(), Some((20, 320)));
    assert_eq!(c.tick(270), ["free_entry_point:20:closing:50:320"]);
    assert_eq!(c.tick(320), ["free_entry_point:20:closed:expired:320"]);
}

#[test]
fn sends_without_a_referral_open_no_free_entry_point_window() {
    let mut c = Contact::new();
    c.apply(msg("m1", 10), 11);
    assert_eq!(c.apply(sent(20), 21), none());
    assert_eq!(c.fep(), None);
}

#[test]
fn a_reply_after_the_reply_window_opens_nothing() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    assert_eq!(fep_only(c.apply(sent(110), 111)), none());
    assert_eq!(c.apply(sent(109), 112), ["free_entry_point:109:opened:409"]);
}

#[test]
fn a_reply_processed_before_its_referral_still_opens_at_the_reply() {
    let mut c = Contact::new();
    assert_eq!(c.apply(sent(5), 6), none(), "an earlier, unrelated send");
    assert_eq!(c.apply(sent(20), 21), none());
    assert_eq!(
        c.apply(referral("r", 10), 22),
        [
            "customer_service:10:opened:110",
            "free_entry_point:20:opened:320"
        ]
    );
}

#[test]
fn an_earlier_reply_arriving_late_moves_the_end_not_the_identity() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    assert_eq!(
        fep_only(c.apply(sent(30), 31)),
        ["free_entry_point:30:opened:330"]
    );
    assert_eq!(c.apply(sent(20), 32), none());
    assert_eq!(c.fep(), Some((30, 320)));
    assert_eq!(
        fep_only(c.tick(320)),
        ["free_entry_point:30:closed:expired:320"]
    );
}

#[test]
fn a_referral_opens_at_most_one_free_entry_point_window() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    c.tick(320);
    // A send of the same reply window delivered very late, and the referral again.
    assert_eq!(c.apply(sent(50), 321), none());
    assert_eq!(c.apply(referral("r", 10), 322), none());
    assert_eq!(c.fep(), None);
}

#[test]
fn a_new_referral_after_the_window_ended_can_open_another() {
    let mut c = Contact::new();
    c.apply(referral("r1", 10), 11);
    c.apply(sent(20), 21);
    c.tick(320);
    c.apply(referral("r2", 400), 401);
    assert_eq!(
        fep_only(c.apply(sent(410), 411)),
        ["free_entry_point:410:opened:710"]
    );
}

// ----- free entry offer -----

fn offer_only(events: Vec<String>) -> Vec<String> {
    events
        .into_iter()
        .filter(|e| e.starts_with("free_entry_offer"))
        .collect()
}

#[test]
fn an_unanswered_referral_offer_is_warned_and_expires_after_the_reply_window() {
    let mut c = Contact::new();
    assert_eq!(
        offer_only(c.apply(referral("r", 10), 11)),
        ["free_entry_offer:10:opened:110"]
    );
    assert_eq!(
        offer_only(c.tick(60)),
        ["free_entry_offer:10:closing:50:110"]
    );
    assert_eq!(
        offer_only(c.tick(90)),
        ["free_entry_offer:10:closing:20:110"]
    );
    assert_eq!(
        offer_only(c.tick(110)),
        ["free_entry_offer:10:closed:expired:110"]
    );
    assert_eq!(
        c.apply(sent(120), 121),
        none(),
        "a reply after the offer ended opens no FEP"
    );
    let offer = c.state.free_entry_offer().expect("remembered");
    assert_eq!(offer.close_reason, Some(CloseReason::Expired));
}

#[test]
fn a_newer_referral_moves_the_open_offer_and_rearms_its_warnings() {
    let mut c = Contact::new();
    c.apply(referral("r1", 10), 11);
    assert_eq!(
        offer_only(c.tick(60)),
        ["free_entry_offer:10:closing:50:110"]
    );
    assert_eq!(offer_only(c.apply(referral("r2", 50), 61)), none());
    assert_eq!(
        offer_only(c.tick(100)),
        ["free_entry_offer:10:closing:50:150"],
        "warned again before the new end"
    );
    assert_eq!(
        offer_only(c.apply(referral("r0", 5), 101)),
        none(),
        "an older referral arriving late does not move the end back"
    );
    assert_eq!(
        offer_only(c.tick(150)),
        ["free_entry_offer:10:closed:expired:150"]
    );
}

#[test]
fn a_referral_while_a_free_entry_point_runs_offers_nothing() {
    let mut c = Contact::new();
    c.apply(sent_meta(20, 320), 21);
    assert!(c.fep().is_some());
    assert_eq!(offer_only(c.apply(referral("r", 30), 31)), none());
    assert_eq!(c.state.free_entry_offer(), None);
}

#[test]
fn a_late_referral_offers_nothing() {
    let mut c = Contact::new();
    assert_eq!(offer_only(c.apply(referral("r", 10), 110)), none());
    assert_eq!(c.state.free_entry_offer(), None);
}

#[test]
fn meta_stating_the_free_entry_point_converts_the_offer() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    assert_eq!(
        c.apply(sent_meta(40, 300), 41),
        [
            "free_entry_offer:10:closed:converted:40",
            "free_entry_point:40:opened:300"
        ]
    );
    assert_eq!(
        c.deadline(),
        Some(60),
        "the CSW's first warning; nothing left of the offer"
    );
}

#[test]
fn a_referral_older_than_a_closed_offer_opens_no_second_one() {
    let mut c = Contact::new();
    c.apply(referral("r2", 50), 51);
    c.tick(150);
    assert_eq!(offer_only(c.apply(referral("r1", 40), 152)), none());
}

#[test]
fn both_ids_with_an_open_offer_merge_into_one_that_closes_each_identity() {
    let mut old = Contact::new();
    old.apply(referral("r1", 10), 11);
    let mut new = Contact::new();
    new.apply(referral("r2", 30), 31);
    let mut out = Vec::new();
    new.state.absorb(old.state, at(32), &new.cfg, &mut out);
    assert!(out.is_empty());
    let offer = new.state.free_entry_offer().expect("open");
    assert_eq!((offer.opened_at.0, offer.expires_at.0), (30, 130));
    assert_eq!(
        new.apply(sent(40), 41),
        [
            "free_entry_offer:30:closed:converted:40",
            "free_entry_offer:10:closed:converted:40",
            "free_entry_point:40:opened:340"
        ]
    );
}

#[test]
fn a_free_entry_point_window_already_over_opens_nothing_and_stays_closed() {
    let mut c = Contact::new();
    c.apply(sent(20), 21);
    // The referral message comes in after the FEP it earned has ended.
    assert_eq!(c.apply(referral("r", 10), 330), none());
    assert_eq!(c.fep(), None);
    assert_eq!(c.apply(sent(30), 331), none(), "no second chance");
}

#[test]
fn meta_expiration_opens_the_window_without_a_known_referral() {
    let mut c = Contact::new();
    assert_eq!(
        c.apply(sent_meta(20, 500), 21),
        ["free_entry_point:20:opened:500"]
    );
    assert!(c
        .state
        .free_entry_point()
        .is_some_and(|v| v.expires_at_from_meta));
}

#[test]
fn meta_expiration_is_authoritative_and_re_arms_warnings() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    assert_eq!(c.fep(), Some((20, 320)));
    // Meta's end replaces our estimate, earlier or later.
    assert_eq!(c.apply(sent_meta(25, 250), 26), none());
    assert_eq!(c.fep(), Some((20, 250)));
    assert_eq!(
        fep_only(c.tick(200)),
        ["free_entry_point:20:closing:50:250"]
    );
    assert_eq!(c.apply(sent_meta(210, 400), 211), none());
    assert_eq!(c.tick(350), ["free_entry_point:20:closing:50:400"]);
    // Among Meta's ends the latest wins: an older status arriving late changes nothing.
    assert_eq!(c.apply(sent_meta(30, 250), 351), none());
    assert_eq!(c.fep(), Some((20, 400)));
    assert_eq!(c.tick(400), ["free_entry_point:20:closed:expired:400"]);
}

#[test]
fn meta_expiration_in_the_past_closes_the_window_at_once() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    assert_eq!(
        fep_only(c.apply(sent_meta(25, 90), 100)),
        ["free_entry_point:20:closed:expired:90"]
    );
}

#[test]
fn meta_expiration_already_over_opens_nothing() {
    let mut c = Contact::new();
    assert_eq!(c.apply(sent_meta(20, 90), 100), none());
    c.apply(referral("r", 10), 101);
    assert_eq!(
        c.apply(sent(60), 102),
        none(),
        "inside the FEP Meta reported"
    );
    assert_eq!(c.fep(), None);
}

#[test]
fn re_engagement_failure_does_not_touch_the_free_entry_point_window() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    assert_eq!(
        c.apply(failed(40), 41),
        ["customer_service:10:closed:meta_reported:40"]
    );
    assert_eq!(c.fep(), Some((20, 320)));
}

// ----- restarts -----

#[test]
fn after_downtime_ended_windows_close_without_their_warnings() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    // Down from 21 to 200: the CSW ended at 110, the FEP runs until 320.
    assert_eq!(c.tick(200), ["customer_service:10:closed:expired:110"]);
    assert_eq!(c.deadline(), Some(270));
}

#[test]
fn after_downtime_overdue_warnings_of_open_windows_go_out_at_once() {
    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    assert_eq!(
        c.tick(305),
        [
            "customer_service:10:closed:expired:110",
            "free_entry_point:20:closing:50:320",
            "free_entry_point:20:closing:20:320"
        ]
    );
    assert_eq!(c.deadline(), Some(315));
}

#[test]
fn state_survives_a_json_round_trip_and_reads_well() {
    let mut c = Contact::new();
    c.apply(referral("wamid.r", 10), 11);
    c.apply(sent(20), 21);
    c.tick(60);
    let json = serde_json::to_value(&c.state).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "customer_service": {
                "state": "open", "opened_at": 10, "expires_at": 110, "closing_leads_done": 1
            },
            "last_inbound_message_id": "wamid.r",
            "inbound_floor_at": 10,
            "free_entry_point": {
                "state": "open", "opened_at": 20, "expires_at": 320, "closing_leads_done": 0
            },
            "free_entry_offer": {
                "state": "closed", "opened_at": 10, "expires_at": 20, "closing_leads_done": 3,
                "close_reason": "converted"
            },
            "referral_at": 10,
            "earliest_business_send_at": 20,
            "latest_business_send_at": 20
        })
    );
    let back: ContactWindows = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, c.state);
    assert_eq!(
        serde_json::to_string(&ContactWindows::default()).expect("serializes"),
        "{}"
    );
    let empty: ContactWindows = serde_json::from_str("{}").expect("deserializes");
    assert_eq!(empty, ContactWindows::default());
}

// ----- moves -----

#[test]
fn a_move_adopts_the_old_window_as_it_was() {
    let mut old = Contact::new();
    old.apply(msg("m1", 10), 12);
    old.tick(60);
    let mut new = Contact::new();
    let mut out = Vec::new();
    new.state
        .absorb(old.state.clone(), at(61), &new.cfg, &mut out);
    assert!(out.is_empty());
    assert_eq!(new.csw(), Some((10, 110, Some("m1".into()))));
    assert!(
        no_merged_identities(&new.state),
        "no side list for one identity"
    );
    assert_eq!(new.tick(90), ["customer_service:10:closing:20:110"]);
    assert_eq!(new.tick(200), ["customer_service:10:closed:expired:110"]);
}

#[test]
fn a_move_merging_two_open_windows_closes_each_identity_once() {
    let mut old = Contact::new();
    old.apply(msg("m1", 10), 12);
    assert_eq!(old.tick(60), ["customer_service:10:closing:50:110"]);
    let mut new = Contact::new();
    new.apply(msg("m5", 50), 51);
    let mut out = Vec::new();
    new.state.absorb(old.state, at(61), &new.cfg, &mut out);
    assert!(out.is_empty());
    assert_eq!(new.csw(), Some((50, 150, Some("m5".into()))));
    assert_eq!(
        new.state
            .merged_opened_at(WindowKind::CustomerService)
            .collect::<Vec<_>>(),
        [at(10)]
    );
    // Both identities are warned before the shared end, then closed once each.
    assert_eq!(
        new.tick(100),
        [
            "customer_service:50:closing:50:150",
            "customer_service:10:closing:50:150"
        ]
    );
    new.tick(130);
    new.tick(145);
    assert_eq!(
        new.tick(150),
        [
            "customer_service:50:closed:expired:150",
            "customer_service:10:closed:expired:150"
        ]
    );
    assert!(
        no_merged_identities(&new.state),
        "side list dropped with the window"
    );
    assert_eq!(new.tick(1000), none());
}

#[test]
fn a_move_keeps_the_later_end_and_the_old_memory() {
    let mut old = Contact::new();
    old.apply(msg("m1", 60), 61);
    old.apply(failed(70), 71);
    old.apply(referral("r", 75), 76);
    let mut new = Contact::new();
    new.apply(msg("m5", 50), 51);
    let mut out = Vec::new();
    new.state.absorb(old.state, at(77), &new.cfg, &mut out);
    // The old id's CSW (opened at 75 by the referral message) outlives the new id's.
    assert_eq!(new.csw(), Some((50, 175, Some("r".into()))));
    assert_eq!(
        new.apply(msg("m0", 70), 78),
        none(),
        "older than what the old id saw"
    );
    assert_eq!(
        new.apply(sent(80), 81),
        [
            "free_entry_offer:75:closed:converted:80",
            "free_entry_point:80:opened:380"
        ],
        "the old id's offer came along and is taken up"
    );
}

#[test]
fn a_move_merging_two_free_entry_point_windows() {
    let mut old = Contact::new();
    old.apply(sent_meta(20, 400), 21);
    let mut new = Contact::new();
    new.apply(referral("r", 30), 31);
    new.apply(sent(40), 41);
    let mut out = Vec::new();
    new.state.absorb(old.state, at(42), &new.cfg, &mut out);
    assert!(out.is_empty());
    assert_eq!(new.fep(), Some((40, 400)));
    assert!(new
        .state
        .free_entry_point()
        .is_some_and(|v| v.expires_at_from_meta));
    let closed: Vec<_> = new
        .tick(400)
        .into_iter()
        .filter(|e| e.contains("free_entry_point") && e.contains("closed"))
        .collect();
    assert_eq!(
        closed,
        [
            "free_entry_point:40:closed:expired:400",
            "free_entry_point:20:closed:expired:400"
        ]
    );
}

#[test]
fn views_show_the_latest_announced_window_open_or_closed() {
    let mut c = Contact::new();
    assert_eq!(c.state.customer_service(), None);
    c.apply(msg("m1", 10), 12);
    let open = c.state.customer_service().expect("a window");
    assert!(open.is_open());
    assert_eq!(open.window, WindowKind::CustomerService);
    c.apply(failed(30), 31);
    let closed = c.state.customer_service().expect("the closed window");
    assert!(!closed.is_open());
    assert_eq!((closed.opened_at, closed.expires_at), (at(10), at(30)));
    // A missed FEP was never announced, so it has no view.
    c.apply(sent_meta(40, 90), 100);
    assert_eq!(c.state.free_entry_point(), None);
}

#[test]
fn meta_expiration_never_reopens_a_window_at_or_before_a_known_one() {
    let mut c = Contact::new();
    c.apply(sent_meta(20, 100), 21);
    c.tick(100);
    // Another status of the same send, claiming a later end, after the close.
    assert_eq!(c.apply(sent_meta(20, 200), 101), none());
    assert_eq!(c.apply(sent_meta(19, 200), 102), none());
    assert_eq!(
        c.apply(sent_meta(150, 450), 151),
        ["free_entry_point:150:opened:450"]
    );
}

// ----- forgetting, ids, size -----

#[test]
fn a_contact_is_forgettable_once_its_memory_can_no_longer_matter() {
    let mut c = Contact::new();
    assert!(c.state.is_forgettable(at(0), &c.cfg));
    c.apply(msg("m1", 10), 12);
    assert!(!c.state.is_forgettable(at(50), &c.cfg), "open");
    c.tick(110);
    assert!(!c.state.is_forgettable(at(111), &c.cfg));
    // Memory lasts one CSW plus one FEP length (400 s here).
    assert!(!c.state.is_forgettable(at(409), &c.cfg));
    assert!(c.state.is_forgettable(at(410), &c.cfg));

    let mut c = Contact::new();
    c.apply(referral("r", 10), 11);
    c.apply(sent(20), 21);
    c.tick(320);
    assert!(!c.state.is_forgettable(at(700), &c.cfg), "the FEP's memory");
    assert!(c.state.is_forgettable(at(720), &c.cfg));
}

#[test]
fn event_ids_and_types() {
    let event = |event| WindowEvent {
        event,
        window: WindowKind::FreeEntryPoint,
        opened_at: at(1_795_250_000),
        expires_at: at(1_795_509_200),
        last_inbound_message_id: None,
    };
    let opened = event(EventType::Opened);
    assert_eq!(opened.id_suffix(), "free_entry_point:1795250000:opened");
    assert_eq!(opened.type_name(), "whatsapp.window.opened");
    let closing = event(EventType::Closing { lead_secs: 3600 });
    assert_eq!(
        closing.id_suffix(),
        "free_entry_point:1795250000:closing:3600:1795509200"
    );
    assert_eq!(closing.type_name(), "whatsapp.window.closing");
    assert_eq!(closing.lead_seconds(), Some(3600));
    let closed = event(EventType::Closed {
        reason: CloseReason::MetaReported,
    });
    assert_eq!(closed.id_suffix(), "free_entry_point:1795250000:closed");
    assert_eq!(closed.type_name(), "whatsapp.window.closed");
    assert_eq!(closed.close_reason(), Some(CloseReason::MetaReported));
    assert_eq!(
        serde_json::to_string(&CloseReason::MetaReported).expect("serializes"),
        "\"meta_reported\""
    );
    assert_eq!(
        serde_json::to_string(&WindowKind::CustomerService).expect("serializes"),
        "\"customer_service\""
    );
}

#[test]
fn per_contact_state_stays_small() {
    let size = std::mem::size_of::<ContactWindows>();
    assert!(size <= 80, "ContactWindows grew to {size} bytes");
}
