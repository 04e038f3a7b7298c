//! `wire_enum!`: a closed set of names with exactly one string form each.
//!
//! The generated enum serialises, deserialises, parses (`FromStr`,
//! `TryFrom<String>` — what storage rows decode through), displays as
//! that string and describes itself to the OpenAPI document as a string
//! enum, so a status or an action is spelled in one place.
//!
//! Hand-written rather than `strum`: the workspace needs four impls and the
//! same refusal message everywhere, which a dozen lines give without a
//! proc-macro dependency.

use std::fmt;

/// A string that names none of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant {
    /// What was being parsed (`"run status"`).
    pub kind: &'static str,
    pub value: String,
    /// The accepted strings.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}': expected one of {}", self.kind, self.value, self.expected.join(", "))
    }
}

impl std::error::Error for UnknownVariant {}

/// Declares `pub enum $name { $Variant => "text": "doc", … }` with its one
/// string form; `$kind` names it in refusals.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident ($kind:literal) { $($variant:ident => $text:literal: $doc:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[doc = $doc] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every string form, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The one string form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::wire_enum::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::wire_enum::UnknownVariant { kind: $kind, value: other.to_owned(), expected: Self::NAMES }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::wire_enum::UnknownVariant;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                $crate::wire_enum::string_enum(Self::NAMES)
            }
        }

        impl ::utoipa::ToSchema for $name {}

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use wire_enum;

/// The OpenAPI schema of a string that is one of `names`.
pub fn string_enum(names: &[&str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).enum_values(Some(names.iter().copied())).into()
}

#[cfg(test)]
mod tests {
    use crate::status::RunStatus;

    #[test]
    fn one_string_form_both_ways() {
        for status in RunStatus::ALL {
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<RunStatus>(&json).unwrap(), *status);
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), *status);
        }
        let refused = "done".parse::<RunStatus>().unwrap_err().to_string();
        assert_eq!(refused, "unknown run status 'done': expected one of pending, running, succeeded, failed, cancelled");
        assert!(serde_json::from_str::<RunStatus>("\"done\"").is_err());
    }
}
