//! Window durations and the opener classification.

/// Meta's customer service window: 24 hours after the customer's last message.
pub const DEFAULT_SERVICE_WINDOW_SECS: i64 = 24 * 3600;
/// Meta's free entry point window: 72 hours after the business's first reply.
pub const DEFAULT_FREE_ENTRY_WINDOW_SECS: i64 = 72 * 3600;
/// The spec's default `--closing-lead 1h`.
pub const DEFAULT_CLOSING_LEADS_SECS: [i64; 1] = [3600];
/// Progress through the leads is a `u8` index; nobody needs more warnings than this.
pub const MAX_CLOSING_LEADS: usize = 32;

/// The configurable durations. The rules read `closing_leads_secs` as a set (order, duplicates
/// and non-positive values do not matter); [`WindowConfig::new`] and
/// [`WindowConfig::normalize`] tidy the list for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Length of the customer service window (CSW). It is also the time a business has to reply
    /// to a referral message for a free entry point window to open (Meta: 24 hours for both).
    pub service_window_secs: i64,
    /// Length of the free entry point window (FEP) when Meta does not state its end.
    pub free_entry_window_secs: i64,
    /// How long before a window's end a `closing` warning goes out, largest first.
    pub closing_leads_secs: Vec<i64>,
    /// Whether a reaction opens or refreshes the CSW (Meta does not say; default off).
    pub reactions_open_window: bool,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::new(
            DEFAULT_SERVICE_WINDOW_SECS,
            DEFAULT_FREE_ENTRY_WINDOW_SECS,
            DEFAULT_CLOSING_LEADS_SECS,
            false,
        )
    }
}

impl WindowConfig {
    pub fn new(
        service_window_secs: i64,
        free_entry_window_secs: i64,
        closing_leads_secs: impl IntoIterator<Item = i64>,
        reactions_open_window: bool,
    ) -> Self {
        let mut cfg = Self {
            service_window_secs,
            free_entry_window_secs,
            closing_leads_secs: closing_leads_secs.into_iter().collect(),
            reactions_open_window,
        };
        cfg.normalize();
        cfg
    }

    /// Leads sorted descending, deduplicated, positive, at most [`MAX_CLOSING_LEADS`].
    pub fn normalize(&mut self) {
        let leads = &mut self.closing_leads_secs;
        leads.retain(|&lead| lead > 0);
        leads.sort_unstable_by(|a, b| b.cmp(a));
        leads.dedup();
        leads.truncate(MAX_CLOSING_LEADS);
    }

    pub fn normalized(mut self) -> Self {
        self.normalize();
        self
    }

    /// The `index`-th lead, largest first, counting each positive value once. It reads the
    /// leads as a set, so a config built without [`WindowConfig::normalize`] behaves the same;
    /// the list is a handful of values, so selecting beats keeping a sorted copy.
    pub(crate) fn lead(&self, index: u8) -> Option<i64> {
        if usize::from(index) >= MAX_CLOSING_LEADS {
            return None;
        }
        let mut found: Option<i64> = None;
        for _ in 0..=index {
            let below = found;
            found = self
                .closing_leads_secs
                .iter()
                .copied()
                .filter(|&lead| lead > 0 && below.is_none_or(|bound| lead < bound))
                .max();
            found?;
        }
        found
    }

    /// How many distinct leads there are (at most [`MAX_CLOSING_LEADS`]).
    pub(crate) fn lead_count(&self) -> u8 {
        let mut count = 0;
        while self.lead(count).is_some() {
            count += 1;
        }
        count
    }

    /// A referral is answered by a business send within this long after it. Meta says 24 hours,
    /// the same as the CSW; tying it to `service_window_secs` keeps short test configs coherent.
    pub(crate) fn reply_window_secs(&self) -> i64 {
        self.service_window_secs
    }

    /// How long a remembered instant can still change a decision: a send can answer a referral
    /// up to one reply window later, and the FEP it opens lasts one FEP length.
    pub(crate) fn memory_secs(&self) -> i64 {
        self.service_window_secs
            .max(0)
            .saturating_add(self.free_entry_window_secs.max(0))
    }
}

/// Does an inbound `messages[]` item of this `type` open or refresh the customer service window?
///
/// Every customer message does, except `system` (identity changes), `revoke` (a deletion) and
/// `reaction` (only when configured). `request_welcome` counts, and so does any type this code
/// does not know yet: it is still the customer writing.
pub fn message_opens_window(message_type: &str, cfg: &WindowConfig) -> bool {
    match message_type {
        "system" | "revoke" => false,
        "reaction" => cfg.reactions_open_window,
        _ => true,
    }
}
