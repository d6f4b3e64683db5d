//! The tamper-evident audit log (spec/audit.md): canonical entry bodies, leaf hashes and
//! the RFC 6962 Merkle tree over them. Pure code: the append path lives in `db::audit`,
//! which calls [`entry_body`] inside the transaction of the change it records.

pub mod action;
pub mod bundle;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod proof;

pub use action::{text_sha256, ActionName, AuditAction};
pub use entry::{entry_body, leaf_hash, Actor, EntryBody};
pub use merkle::{tree_root, TreeHasher};
