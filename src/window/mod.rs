//! The messaging window rules, pure: no I/O and no clock. `now` is always a parameter, and the
//! only time that decides what a message means is Meta's own timestamp on it.
//!
//! The tracker keeps one [`ContactWindows`] per contact, feeds it [`Input`]s with
//! [`ContactWindows::apply`], calls [`ContactWindows::tick`] at
//! [`ContactWindows::next_deadline`], and publishes the [`WindowEvent`]s that come out.
//!
//! # Customer service window (CSW)
//!
//! - A customer message at `t` opens the CSW when none is open: `opened_at = t`,
//!   `expires_at = t + service_window`, one `opened`.
//! - Late rule: a message with `t + service_window <= now` opens and extends nothing.
//! - While open, a message newer than the last one counted moves `expires_at` to
//!   `t + service_window` and becomes `last_inbound_message_id`. No event, but warnings re-arm.
//! - A message not newer than the last one counted (a duplicate, or an older one that arrived
//!   out of order) changes nothing. In particular `opened_at` never moves back when an older,
//!   still live message shows up late: the window was announced under that `opened_at`, and it
//!   is the window's identity in the event ids. So under reordering `opened_at` is the first
//!   live message *processed*; the end, which is what senders act on, does not depend on order.
//! - Error 131047 at `t_f` closes an open CSW at once (`closed`, `meta_reported`) unless a
//!   customer message newer than `t_f` was already counted. The `closed` event carries
//!   `expires_at = t_f` (capped at the window's end): the instant Meta proved the window over.
//!   `t_f` is remembered even when nothing is open, so messages stamped at or before it never
//!   open a window later (Meta's verdict covers them).
//!
//! # Free entry point window (FEP)
//!
//! - A customer message with a `referral` at `t_r` makes the contact eligible. A business send
//!   at `t_s` with `t_r <= t_s < t_r + service_window` (Meta's 24 hours, tied to the CSW length so
//!   short test configurations stay coherent) answers it and opens the FEP:
//!   `opened_at = t_s`, `expires_at = t_s + free_entry_window` — unless the referral already
//!   produced an FEP, or `t_s` falls inside the previous FEP.
//! - A `sent` status with `pricing.type = free_entry_point` carries Meta's end: it opens an FEP
//!   at `t_s` if none is open (no referral needed), or sets the open one's end. It replaces our
//!   own estimate; among several of Meta's ends the latest wins (order independence).
//! - Reordering: a reply processed before its referral message is remembered (the earliest and
//!   the latest business send of the last `service_window + free_entry_window`), so the FEP
//!   still opens at the first reply. With more than two sends before the late referral message,
//!   the FEP opens at the latest one: a bounded-memory approximation. A reply older than the
//!   one that opened the FEP, arriving later, moves the end earlier (identity unchanged).
//! - Late rule: an FEP whose end is already `<= now` opens nothing; it is remembered as
//!   `missed` so that it cannot be opened afterwards.
//! - 131047 does not touch the FEP.
//!
//! # Free entry offer (FEO)
//!
//! - The reply window of a referral is itself announced: a customer message with a `referral`
//!   at `t_r` opens the offer, `opened_at = t_r`, `expires_at = t_r + service_window` — unless
//!   an FEP is open (the reply is free anyway), the offer would already be over (late rule), or
//!   the referral is not newer than the last offer (identities only grow).
//! - A newer referral while the offer is open moves its end (warnings re-arm).
//! - The FEP opening (by a reply, or by Meta's `free_entry_point` status) closes the open offer
//!   `converted` at the FEP's start; its end passing closes it `expired`.
//! - A reply processed before its referral message: the offer was taken up before we knew of
//!   it, so only the FEP opens (the late rule, applied to the offer).
//!
//! # Warnings and closes (every kind)
//!
//! One `closing` per configured lead whose time (`expires_at - lead`) was still ahead of `now`
//! when the window opened or its end last moved, emitted once that time comes and while the
//! window is open. A moved end re-arms the leads still ahead; the re-armed warning's id carries
//! the new end. An end moved earlier (Meta's FEP expiration) is treated alike: leads whose new
//! time already passed are skipped, so the result does not depend on which status came first.
//! A window whose end passed while nothing ticked (tracker down) gets only its `closed`; an
//! open window whose warning time passed gets the warning at once. Exactly one `closed` per
//! announced window. The leads are read as a set: order and duplicates in the config do not
//! matter.
//!
//! `apply` first emits what is due at `now`, like `tick`, so an input always meets the state as
//! it stands at `now`. A message stamped shortly before a window's end but processed after it
//! therefore opens a new window at its own timestamp; it does not revive the ended one. The
//! outcome does not depend on whether the tracker happened to tick in between.
//!
//! # Moves (the BSUID changed)
//!
//! [`ContactWindows::absorb`] takes the old id's state. A kind open on one side only continues
//! as it was. Both open: one window remains, ending at the later end; the other identities are
//! kept in a side list (allocated only in this case) and each still gets its warnings and its
//! own `closed`. Floors, referral and sends merge so the rules above keep holding.
//!
//! # Views
//!
//! [`ContactWindows::latest`] shows the latest announced window of each kind, open or closed
//! (`WindowView::is_open`, with its `close_reason`); for a closed one, `expires_at` is when it
//! closed. An FEP that was never announced has no view.
//!
//! # Forgetting
//!
//! [`ContactWindows::is_forgettable`] is true once nothing is open and every remembered instant
//! is older than `service_window + free_entry_window`: anything the memory would still block is
//! too late to open a window by then.

mod config;
mod event;
pub mod marketing;
pub mod sanity;
mod state;

#[cfg(test)]
mod tests;

pub use config::{
    message_opens_window, WindowConfig, DEFAULT_CLOSING_LEADS_SECS, DEFAULT_FREE_ENTRY_WINDOW_SECS,
    DEFAULT_SERVICE_WINDOW_SECS, MAX_CLOSING_LEADS,
};
pub use event::{CloseReason, EventType, WindowEvent, WindowKind, WindowSummary, WindowView};
pub use marketing::{Marketing, MarketingPreference, PreferenceSource};
pub use state::{ContactWindows, Input};
