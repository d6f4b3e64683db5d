//! UUIDv7 identifiers (spec/api.md: "Ids are UUIDs (version 7, so they sort by creation
//! time)"). Each kind of id is its own type, parsed once at the edge, so a draft id can
//! never be passed where a user id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId(s.chars().take(64).collect()))
            }
        }

        /// In the OpenAPI description: a string in UUID format.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        /// For reading a stored id (`#[diesel(deserialize_as = String)]`): a row whose id
        /// does not parse fails to load, never silently.
        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }
    };
}

/// A string that is not a UUID where one was expected (answered 400, spec/api.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id (a UUID was expected): {0:?}")]
pub struct InvalidId(pub String);

uuid_id!(
    /// A person who signs in.
    UserId
);
uuid_id!(
    /// A customer record, which may have several handles.
    CustomerId
);
uuid_id!(
    /// An inbound message (a customer's post).
    InboundId
);
uuid_id!(
    /// A draft reply.
    DraftId
);
uuid_id!(
    /// A review of one revision of a draft.
    ReviewId
);
uuid_id!(
    /// A reviewer group (review routes name groups by their name).
    GroupId
);
uuid_id!(
    /// A job in the job queue (also the channel's idempotency key for a post job).
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_ids_are_version_7_and_sort_by_creation() {
        let a = DraftId::new();
        let b = DraftId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(s in ".{0,80}") {
            if let Ok(id) = s.parse::<UserId>() {
                prop_assert_eq!(id.to_string().parse::<UserId>().ok(), Some(id));
            }
        }

        #[test]
        fn display_round_trips(raw in any::<u128>()) {
            let id = InboundId(Uuid::from_u128(raw));
            prop_assert_eq!(id.to_string().parse::<InboundId>().ok(), Some(id));
        }
    }
}
