//! Variables, as Spin's variables factor provides them: the application's
//! variables resolved once at start-up ([`resolve`]) and each component's
//! values served to the guest ([`host`]).

pub mod host;
pub mod resolve;

pub use resolve::{AppVariables, VariableSources};
