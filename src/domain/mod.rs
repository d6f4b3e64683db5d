//! Plain types and rules of the product: no actix, no Diesel.

pub mod hours;
pub mod ids;
pub mod inbound;
pub mod jobs;
pub mod roles;
pub mod routing;
pub mod text;
pub mod time;
pub mod username;
pub mod workflow;
