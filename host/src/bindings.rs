//! Host-side bindings of the interfaces components import from Spin beyond
//! WASI (`host/wit/`), and of the cron trigger's export (`wit/spin-cron.wit`).
//! The guest's Postgres `connection` resource is represented by
//! [`crate::postgres::pool::Connection`], the one host type named here.

wasmtime::component::bindgen!({
    path: "wit",
    world: "local:spin-host/spin-host-imports",
    imports: { default: async | trappable },
    with: {
        "spin:postgres/postgres.connection": crate::postgres::pool::Connection,
    },
});

pub mod cron {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}

pub use fermyon::spin::variables;
pub use spin::postgres::postgres as pg;
