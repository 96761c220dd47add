//! Guest side of the Spin cron trigger interface (`wit/spin-cron.wit`).
//!
//! The cron trigger's own SDK crate is not on crates.io, so every cron
//! component exports the world through this crate instead:
//!
//! ```ignore
//! struct Job;
//! impl spin_cron::Guest for Job {
//!     fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
//!         Ok(())
//!     }
//! }
//! spin_cron::export!(Job);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "spin-cron",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "spin_cron::bindings",
    });
}

pub use bindings::fermyon::spin_cron::cron_types::{Error, Metadata};
pub use bindings::{export, Guest};
