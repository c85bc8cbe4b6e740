//! Lenient leaves: values read where a string or an object is expected, and raw walking.

use super::*;

// ---------------------------------------------------------------------------------------------
// Lenient leaves and raw walking.

/// A JSON value read where a string (or, for timestamps, an integer) is expected; any other
/// type is recorded instead of failing the whole item.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Text<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(String),
    Other,
}

impl<'a> Text<'a> {
    /// A string field: absent and `null` are `None`; any other type is `Bad`.
    pub(super) fn string(&self) -> Result<Option<&str>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(_) | Self::Other => Err(Bad),
        }
    }

    pub(super) fn into_string(self) -> Result<Option<Cow<'a, str>>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(_) | Self::Other => Err(Bad),
        }
    }

    /// A timestamp: Meta sends decimal strings, some producers integers.
    pub(super) fn stamp(&self) -> Result<Option<&str>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(s) => Ok(Some(s)),
            Self::Other => Err(Bad),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

pub(super) struct TextVisitor<'a>(std::marker::PhantomData<Text<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Text::Int(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Text::Int(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Text::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Text::Other)
    }
}

/// A JSON value read where an object is expected.
#[derive(Default)]
pub(super) enum Nested<T> {
    #[default]
    Absent,
    Null,
    Obj(T),
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor(std::marker::PhantomData))
    }
}

pub(super) struct NestedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NestedVisitor<T> {
    type Value = Nested<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Nested::Obj)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Nested::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }

    otherwise_scalars!(Nested::Other);
}

pub(super) fn parse_text(raw: &RawValue) -> serde_json::Result<Text<'_>> {
    serde_json::from_str(raw.get())
}

/// `None` unless `raw` is an object with the fields `T` expects. The check on the first byte
/// matters: serde's derived structs also accept an array, reading fields by position.
pub(super) fn parse_object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    if !raw.get().trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The elements of a JSON array, unparsed; `None` when `raw` is not an array.
pub(super) fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// Calls `f` with each member of the JSON object in `json`, values unparsed, duplicates
/// included (a `Value` or a derived struct would hide or refuse them). `whole_input` also
/// refuses trailing text after the object.
pub(super) fn for_each_member<'a, F>(
    json: &'a str,
    whole_input: bool,
    f: F,
) -> serde_json::Result<()>
where
    F: FnMut(Cow<'a, str>, &'a RawValue),
{
    let mut de = serde_json::Deserializer::from_str(json);
    MembersSeed(f).deserialize(&mut de)?;
    if whole_input {
        de.end()?;
    }
    Ok(())
}

pub(super) struct MembersSeed<F>(pub(super) F);

impl<'de, F> DeserializeSeed<'de> for MembersSeed<F>
where
    F: FnMut(Cow<'de, str>, &'de RawValue),
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for MembersSeed<F>
where
    F: FnMut(Cow<'de, str>, &'de RawValue),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            (self.0)(key, value);
        }
        Ok(())
    }
}

/// An object key, borrowed unless it had escapes.
pub(super) struct Key<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

pub(super) struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}
