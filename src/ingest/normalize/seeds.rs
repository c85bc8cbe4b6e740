//! The first pass: body, entries and changes read in one go, each change's value kept raw.

use super::*;

// ---------------------------------------------------------------------------------------------
// The first pass: body, entries and changes are read in one go (a level read as raw text and
// then parsed again would be scanned once per level), keeping each change's `value` as raw
// text for the second pass.

/// An array element where an object is expected.
pub(super) enum Element<T> {
    Object(T),
    /// Anything else; found again by position when it is passed on.
    Other,
}

pub(super) struct BodyParts<'a> {
    pub(super) object: Option<&'a RawValue>,
    /// `None`: no `entry`, or not an array.
    pub(super) entries: Option<Vec<Element<EntryParts<'a>>>>,
    /// A key other than `object` and `entry`, or one of them twice.
    pub(super) stray: bool,
}

pub(super) struct EntryParts<'a> {
    pub(super) id: Option<&'a RawValue>,
    pub(super) time: Option<&'a RawValue>,
    /// `None`: no `changes`, or not an array.
    pub(super) changes: Option<Vec<Element<ChangeParts<'a>>>>,
    pub(super) stray: bool,
}

pub(super) struct ChangeParts<'a> {
    pub(super) field: Option<&'a RawValue>,
    pub(super) value: Option<&'a RawValue>,
    pub(super) stray: bool,
}

/// Stores `value` in `slot` unless the key was seen before (then `stray`).
pub(super) fn first<T>(slot: &mut Option<T>, stray: &mut bool, value: T) {
    if slot.is_some() {
        *stray = true;
    } else {
        *slot = Some(value);
    }
}

pub(super) struct BodySeed;

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = BodyParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = BodyParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = None;
        let mut entries = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "object" => first(&mut object, &mut stray, map.next_value()?),
                "entry" => first(
                    &mut entries,
                    &mut stray,
                    map.next_value_seed(ArrayOf(EntrySeed))?,
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(BodyParts {
            object,
            entries: entries.flatten(),
            stray,
        })
    }
}

#[derive(Clone, Copy)]
pub(super) struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Element<EntryParts<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Element<EntryParts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut time = None;
        let mut changes = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "id" => first(&mut id, &mut stray, map.next_value()?),
                "time" => first(&mut time, &mut stray, map.next_value()?),
                "changes" => first(
                    &mut changes,
                    &mut stray,
                    map.next_value_seed(ArrayOf(ChangeSeed))?,
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(Element::Object(EntryParts {
            id,
            time,
            changes: changes.flatten(),
            stray,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Element::Other)
    }

    otherwise!(Element::Other);
}

#[derive(Clone, Copy)]
pub(super) struct ChangeSeed;

impl<'de> DeserializeSeed<'de> for ChangeSeed {
    type Value = Element<ChangeParts<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChangeSeed {
    type Value = Element<ChangeParts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut field = None;
        let mut value = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "field" => first(&mut field, &mut stray, map.next_value()?),
                "value" => first(&mut value, &mut stray, map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(Element::Object(ChangeParts {
            field,
            value,
            stray,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Element::Other)
    }

    otherwise!(Element::Other);
}

/// An array of what `S` reads; `None` for any other JSON value.
pub(super) struct ArrayOf<S>(pub(super) S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for ArrayOf<S> {
    type Value = Option<Vec<S::Value>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for ArrayOf<S> {
    type Value = Option<Vec<S::Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(element) = seq.next_element_seed(self.0)? {
            out.push(element);
        }
        Ok(Some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(None)
    }

    otherwise!(None);
}

/// An array element kept as raw text.
#[derive(Clone, Copy)]
pub(super) struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <&'de RawValue>::deserialize(d)
    }
}

/// A modeled change's value, read once: the item arrays come out as raw items.
pub(super) struct ValueParts<'a> {
    pub(super) metadata: Option<&'a RawValue>,
    pub(super) contacts: Option<&'a RawValue>,
    /// Per modeled array: absent, `Some(None)` when not an array, else its items.
    pub(super) lists: [Option<Option<Vec<&'a RawValue>>>; MAX_ARRAYS],
    /// A key not modeled (e.g. `errors`) or a duplicate: the value also goes on whole.
    pub(super) stray: bool,
}

pub(super) struct ValueSeed<'k> {
    pub(super) arrays: &'k [(&'static str, Kind)],
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ValueParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ValueParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut product = None;
        let mut metadata = None;
        let mut contacts = None;
        let mut lists = std::array::from_fn(|_| None);
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "messaging_product" => {
                    first(&mut product, &mut stray, map.next_value::<IgnoredAny>()?)
                }
                "metadata" => first(&mut metadata, &mut stray, map.next_value()?),
                "contacts" => first(&mut contacts, &mut stray, map.next_value()?),
                other => match self.arrays.iter().position(|(name, _)| *name == other) {
                    Some(i) => first(
                        &mut lists[i],
                        &mut stray,
                        map.next_value_seed(ArrayOf(RawSeed))?,
                    ),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        stray = true;
                    }
                },
            }
        }
        Ok(ValueParts {
            metadata,
            contacts,
            lists,
            stray,
        })
    }
}

/// `entry[index]` as raw text, the same one the first pass read (the first `entry` key).
pub(super) fn locate_entry(text: &str, index: usize) -> Option<&RawValue> {
    let mut entries = None;
    for_each_member(text, true, |key, raw| {
        if &*key == "entry" && entries.is_none() {
            entries = Some(raw);
        }
    })
    .ok()?;
    elements(entries?)?.get(index).copied()
}

/// `changes[index]` of an entry, as raw text.
pub(super) fn locate_change(entry: &RawValue, index: usize) -> Option<&RawValue> {
    let mut changes = None;
    for_each_member(entry.get(), false, |key, raw| {
        if &*key == "changes" && changes.is_none() {
            changes = Some(raw);
        }
    })
    .ok()?;
    elements(changes?)?.get(index).copied()
}
