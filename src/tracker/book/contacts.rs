//! One partition's contacts by key. Memory per contact bounds how many contacts a tracker
//! holds, so each contact is one allocation with its key inside, the index holds only a
//! pointer per slot, and timers name a contact by its key's hash instead of holding a copy
//! of the key.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::domain::ContactKey;
use crate::tracker::records::Contact;

/// A contact and its key, stored together.
#[derive(Debug)]
pub struct Stored {
    key: Box<str>,
    pub contact: Contact,
}

impl Stored {
    pub fn new(key: &ContactKey, contact: Contact) -> Box<Self> {
        Box::new(Self {
            key: key.as_str().into(),
            contact,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The contacts of one partition. Hashes are only ever compared within one `Contacts`, whose
/// hasher they come from.
#[derive(Default)]
pub struct Contacts<S = DefaultHashBuilder> {
    table: HashTable<Box<Stored>>,
    hasher: S,
}

impl<S: BuildHasher> Contacts<S> {
    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Contact> {
        self.table
            .find(self.hash(key), |stored| *stored.key == *key)
            .map(|stored| &stored.contact)
    }

    pub fn remove(&mut self, key: &str) -> Option<Box<Stored>> {
        let hash = self.hash(key);
        let found = self.table.find_entry(hash, |stored| *stored.key == *key);
        found.ok().map(|entry| entry.remove().0)
    }

    /// Stores a contact under its key; returns the one it replaces.
    pub fn put(&mut self, stored: Box<Stored>) -> Option<Box<Stored>> {
        let hash = self.hash(&stored.key);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |other| other.key == stored.key,
            |other| hasher.hash_one(&*other.key),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                Some(std::mem::replace(occupied.get_mut(), stored))
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(stored);
                None
            }
        }
    }

    /// Keeps `contact` as the state of `key`, replacing what was there.
    pub fn insert(&mut self, key: &ContactKey, contact: Contact) {
        self.put(Stored::new(key, contact));
    }

    pub fn values(&self) -> impl Iterator<Item = &Contact> {
        self.table.iter().map(|stored| &stored.contact)
    }

    /// Every contact with its key's hash, for arming timers after a restore.
    pub fn hashed_mut(&mut self) -> impl Iterator<Item = (u64, &mut Contact)> {
        let hasher = &self.hasher;
        self.table
            .iter_mut()
            .map(|stored| (hasher.hash_one(&*stored.key), &mut stored.contact))
    }

    /// The contacts whose key has this hash: usually one, rarely more.
    pub fn with_hash_mut(&mut self, hash: u64) -> impl Iterator<Item = &mut Stored> {
        self.table.iter_hash_mut(hash).map(|stored| &mut **stored)
    }
}

impl<S: BuildHasher + Default> FromIterator<(ContactKey, Contact)> for Contacts<S> {
    fn from_iter<I: IntoIterator<Item = (ContactKey, Contact)>>(iter: I) -> Self {
        let mut contacts = Self::default();
        for (key, contact) in iter {
            contacts.insert(&key, contact);
        }
        contacts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixSeconds;
    use crate::tracker::records::Armed;

    /// Every key hashes alike: the worst case of sharing a hash.
    #[derive(Default)]
    struct OneHash;

    impl BuildHasher for OneHash {
        type Hasher = OneHasher;
        fn build_hasher(&self) -> OneHasher {
            OneHasher
        }
    }

    struct OneHasher;

    impl std::hash::Hasher for OneHasher {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn armed(at: i64) -> Contact {
        Contact {
            armed: Armed::at(UnixSeconds(at)),
            ..Contact::default()
        }
    }

    #[test]
    fn keys_that_share_a_hash_stay_apart() {
        let (a, b) = (ContactKey::from_raw("1:a"), ContactKey::from_raw("1:b"));
        let mut contacts: Contacts<OneHash> = [(a.clone(), armed(1)), (b.clone(), armed(2))]
            .into_iter()
            .collect();
        assert_eq!(contacts.len(), 2);
        assert_eq!(
            contacts.get("1:a").and_then(|c| c.armed.get()),
            Some(UnixSeconds(1))
        );
        assert_eq!(
            contacts.get("1:b").and_then(|c| c.armed.get()),
            Some(UnixSeconds(2))
        );
        let mut sharing: Vec<&str> = contacts.with_hash_mut(7).map(|s| s.key()).collect();
        sharing.sort_unstable();
        assert_eq!(sharing, ["1:a", "1:b"]);

        contacts.insert(&a, armed(3));
        assert_eq!(contacts.len(), 2, "a key stored again replaces its contact");
        assert_eq!(
            contacts.get("1:a").and_then(|c| c.armed.get()),
            Some(UnixSeconds(3))
        );
        let removed = contacts.remove("1:b").expect("stored");
        assert_eq!(removed.key(), "1:b");
        assert!(contacts.get("1:b").is_none());
        assert_eq!(
            contacts.get("1:a").and_then(|c| c.armed.get()),
            Some(UnixSeconds(3))
        );
    }
}
