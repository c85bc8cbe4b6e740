//! The read view the API answers from: every contact of every partition of the compacted
//! state topic, as the tracker last committed it. No Kafka here: [`super::feed`] hands it
//! records, so resolution (aliases, phone numbers, BSUID moves) is tested without a broker.
//!
//! Why a read view and not routing to the partition's owner: any instance (a tracker, or the
//! embedded `run`) can answer for any contact without knowing who owns what, an answer never
//! waits on another process or on a rebalance, and the view reads exactly what downstream
//! services read, the committed state. The cost is memory for every contact in every instance
//! that serves the API, measured in BENCHMARKS.md.

use hashbrown::HashMap;

use super::decision::{ContactFacts, WindowSummary};
use crate::domain::{ContactKey, CustomerId, PhoneNumberId, UnixSeconds, WaId};
use crate::kafka::partition_for_key;
use crate::tracker::records::{key_parts, Contact};
use crate::window::{MarketingPreference, WindowKind};

/// An alias chain longer than this is a loop (the tracker forwards at most this often too).
const MAX_HOPS: usize = 4;

/// What the view keeps of one state record.
#[derive(Debug, Default)]
struct Entry {
    windows: [Option<WindowSummary>; 3],
    marketing: Option<MarketingPreference>,
    wa_id: Option<WaId>,
    /// Questions about this key are answered by another key until the instant given.
    alias: Option<(ContactKey, UnixSeconds)>,
}

impl Entry {
    fn from_contact(contact: &Contact) -> Self {
        let windows = WindowKind::ALL.map(|kind| contact.windows.latest_summary(kind));
        Self {
            windows,
            marketing: contact.marketing().copied(),
            wa_id: contact.wa_id.clone(),
            alias: contact
                .alias
                .as_deref()
                .map(|alias| (alias.target.clone(), alias.until)),
        }
    }

    fn has_facts(&self) -> bool {
        self.windows.iter().any(Option::is_some) || self.marketing.is_some()
    }

    fn facts(&self, key: &ContactKey) -> ContactFacts {
        let parts = key_parts(key, self.wa_id.as_ref());
        ContactFacts {
            user_id: parts.user_id.map(|u| u.as_str().to_owned()),
            wa_id: parts.wa_id.map(|w| w.as_str().to_owned()),
            windows: self.windows,
            marketing: self.marketing,
        }
    }
}

/// The state of one partition of the view is not read to its end yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRestored {
    pub partition: i32,
}

pub struct StateView {
    partitions: i32,
    restored: Vec<bool>,
    /// Boxed: a million entries inline made every doubling of the table copy them all into
    /// fresh memory, and left up to half of a table of 200-byte buckets empty.
    entries: HashMap<ContactKey, Box<Entry>>,
    /// `<phone_number_id>:<wa_id>` to the BSUID key that last showed that phone number, for
    /// questions by phone number about contacts keyed by BSUID.
    by_phone: HashMap<ContactKey, ContactKey>,
}

impl StateView {
    pub fn new(partitions: i32) -> Self {
        Self {
            partitions: partitions.max(1),
            restored: vec![false; usize::try_from(partitions.max(1)).unwrap_or(1)],
            entries: HashMap::new(),
            by_phone: HashMap::new(),
        }
    }

    pub fn mark_restored(&mut self, partition: i32) {
        if let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.restored.get_mut(p))
        {
            *slot = true;
        }
    }

    pub fn is_restored(&self) -> bool {
        self.restored.iter().all(|r| *r)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A state record: the contact's whole current state under its key.
    pub fn upsert(&mut self, key: ContactKey, contact: &Contact) {
        self.forget_phone_of(&key);
        let entry = Box::new(Entry::from_contact(contact));
        if let Some(phone_key) = entry
            .wa_id
            .as_ref()
            .and_then(|wa_id| key.phone_alias(wa_id))
        {
            self.by_phone.insert(phone_key, key.clone());
        }
        self.entries.insert(key, entry);
    }

    /// A tombstone: the tracker forgot the contact.
    pub fn remove(&mut self, key: &ContactKey) {
        self.forget_phone_of(key);
        self.entries.remove(key);
    }

    fn forget_phone_of(&mut self, key: &ContactKey) {
        let Some(previous) = self.entries.get(key) else {
            return;
        };
        let Some(phone_key) = previous
            .wa_id
            .as_ref()
            .and_then(|wa_id| key.phone_alias(wa_id))
        else {
            return;
        };
        if self.by_phone.get(&phone_key) == Some(key) {
            self.by_phone.remove(&phone_key);
        }
    }

    fn check(&self, key: &ContactKey) -> Result<(), NotRestored> {
        let partition = partition_for_key(key.as_str(), self.partitions);
        let restored = usize::try_from(partition)
            .ok()
            .and_then(|p| self.restored.get(p))
            .copied()
            .unwrap_or(false);
        if restored {
            Ok(())
        } else {
            Err(NotRestored { partition })
        }
    }

    /// What is known of a contact at `now`, following aliases (a phone number whose contact
    /// is keyed by BSUID, an old BSUID after a move). `Ok(None)`: nothing is known.
    pub fn lookup(
        &self,
        phone_number_id: &PhoneNumberId,
        customer: &CustomerId,
        now: UnixSeconds,
    ) -> Result<Option<ContactFacts>, NotRestored> {
        let asked = ContactKey::new(phone_number_id, customer);
        let mut key = asked.clone();
        for _ in 0..MAX_HOPS {
            self.check(&key)?;
            let Some(entry) = self.entries.get(&key) else {
                break;
            };
            match &entry.alias {
                Some((target, until)) if *until > now && *target != key => {
                    key = target.clone();
                }
                _ if entry.has_facts() => return Ok(Some(entry.facts(&key))),
                _ => break,
            }
        }
        if let CustomerId::Phone(_) = customer {
            if let Some(target) = self.by_phone.get(&asked) {
                self.check(target)?;
                if let Some(entry) = self.entries.get(target).filter(|e| e.has_facts()) {
                    return Ok(Some(entry.facts(target)));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::records::Alias;
    use crate::window::{ContactWindows, Input, WindowConfig};

    const NOW: i64 = 1_796_115_600;

    fn open_contact(wa_id: Option<&str>) -> Contact {
        let mut windows = ContactWindows::default();
        let input = Input::CustomerMessage {
            id: crate::domain::MessageId::new("wamid.A"),
            at: UnixSeconds(NOW - 60),
            referral: false,
        };
        windows.apply(
            &input,
            UnixSeconds(NOW - 60),
            &WindowConfig::default(),
            &mut Vec::new(),
        );
        Contact {
            windows,
            wa_id: wa_id.map(WaId::new),
            ..Contact::default()
        }
    }

    fn restored_view() -> StateView {
        let mut view = StateView::new(3);
        for p in 0..3 {
            view.mark_restored(p);
        }
        view
    }

    fn ask(view: &StateView, customer: &str) -> Result<Option<ContactFacts>, NotRestored> {
        view.lookup(
            &PhoneNumberId::new("100"),
            &CustomerId::parse(customer).expect("valid id"),
            UnixSeconds(NOW),
        )
    }

    #[test]
    fn a_bsuid_contact_answers_by_bsuid_and_by_its_phone_number() {
        let mut view = restored_view();
        view.upsert(ContactKey::from_raw("100:US.1"), &open_contact(Some("155")));
        let by_bsuid = ask(&view, "US.1").expect("restored").expect("known");
        assert_eq!(by_bsuid.user_id.as_deref(), Some("US.1"));
        assert_eq!(by_bsuid.wa_id.as_deref(), Some("155"));
        let by_phone = ask(&view, "155").expect("restored").expect("known");
        assert_eq!(by_phone, by_bsuid);
        assert_eq!(ask(&view, "156").expect("restored"), None);
    }

    #[test]
    fn an_alias_leads_to_the_new_id_until_it_ends() {
        let mut view = restored_view();
        view.upsert(ContactKey::from_raw("100:US.2"), &open_contact(None));
        let stub = Contact {
            alias: Some(Box::new(Alias {
                target: ContactKey::from_raw("100:US.2"),
                until: UnixSeconds(NOW + 10),
                changed_at: None,
            })),
            ..Contact::default()
        };
        view.upsert(ContactKey::from_raw("100:US.1"), &stub);
        let facts = ask(&view, "US.1").expect("restored").expect("known");
        assert_eq!(
            facts.user_id.as_deref(),
            Some("US.2"),
            "answered as the new id"
        );
        let later = view.lookup(
            &PhoneNumberId::new("100"),
            &CustomerId::parse("US.1").expect("id"),
            UnixSeconds(NOW + 10),
        );
        assert_eq!(later, Ok(None), "an ended alias leads nowhere");
    }

    #[test]
    fn a_tombstone_forgets_the_contact_and_its_phone_number() {
        let mut view = restored_view();
        let key = ContactKey::from_raw("100:US.1");
        view.upsert(key.clone(), &open_contact(Some("155")));
        view.remove(&key);
        assert_eq!(ask(&view, "US.1"), Ok(None));
        assert_eq!(ask(&view, "155"), Ok(None));
        assert!(view.is_empty());
    }

    #[test]
    fn a_contact_whose_partition_is_not_read_yet_is_not_answered() {
        let mut view = StateView::new(3);
        let key = ContactKey::from_raw("100:US.1");
        let partition = partition_for_key(key.as_str(), 3);
        view.upsert(key, &open_contact(None));
        assert_eq!(ask(&view, "US.1"), Err(NotRestored { partition }));
        for p in (0..3).filter(|p| *p != partition) {
            view.mark_restored(p);
        }
        assert!(ask(&view, "US.1").is_err(), "other partitions do not count");
        view.mark_restored(partition);
        assert!(ask(&view, "US.1").expect("restored").is_some());
    }
}
