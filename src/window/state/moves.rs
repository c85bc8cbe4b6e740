//! Moves: the state of the customer's old id absorbed into the new one.

use super::*;

impl ContactWindows {
    pub(super) fn absorb_window(
        &mut self,
        kind: WindowKind,
        old: &mut ContactWindows,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        let theirs = *old.window(kind);
        let their_merged = old
            .merged
            .as_deref_mut()
            .map(|merged| std::mem::take(merged.of_mut(kind)))
            .unwrap_or_default();
        let ours = *self.window(kind);
        match (ours.is_open(), theirs.is_open()) {
            (true, true) => self.merge_open(kind, theirs, their_merged, now, cfg),
            (false, true) => {
                *self.parts(kind).window = theirs;
                self.add_merged(kind, their_merged);
            }
            (false, false) => {
                // Keep the memory of the later window; it is what the FEP rules consult.
                let theirs_later = theirs.status != Status::Never
                    && (ours.status == Status::Never || theirs.opened_at > ours.opened_at);
                if theirs_later {
                    *self.parts(kind).window = theirs;
                }
            }
            (true, false) => {}
        }
    }

    /// Both ids had an open window of this kind: one window remains, ending at the later end;
    /// the old identities ride along so each still gets its warnings and its `closed`.
    pub(super) fn merge_open(
        &mut self,
        kind: WindowKind,
        theirs: Window,
        their_merged: Vec<MergedIdentity>,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        let ours = *self.window(kind);
        let expires_at = ours.expires_at.max(theirs.expires_at);
        let their_leads_done = if theirs.expires_at == expires_at {
            None
        } else {
            Some(leads_passed(expires_at, now, cfg))
        };
        self.move_end(kind, expires_at, now, cfg);
        self.parts(kind).window.expires_at_from_meta |= theirs.expires_at_from_meta;
        let main = MergedIdentity {
            opened_at: theirs.opened_at,
            leads_done: theirs.leads_done,
        };
        let identities = std::iter::once(main)
            .chain(their_merged)
            .map(|identity| MergedIdentity {
                leads_done: their_leads_done.unwrap_or(identity.leads_done),
                ..identity
            })
            .collect();
        self.add_merged(kind, identities);
    }

    pub(super) fn add_merged(&mut self, kind: WindowKind, identities: Vec<MergedIdentity>) {
        let main = self.window(kind).opened_at;
        for identity in identities {
            let known_already = identity.opened_at == main
                || self
                    .merged_identities(kind)
                    .any(|m| m.opened_at == identity.opened_at);
            if !known_already {
                self.merged
                    .get_or_insert_with(Box::default)
                    .of_mut(kind)
                    .push(identity);
            }
        }
    }
}
