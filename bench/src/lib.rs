//! `chat-bench`: the chat's benchmark tool (issue #10) and soak run (issue #11). Each
//! subcommand measures one thing against real local servers (DynamoDB Local, moto, the
//! local gateway) and returns a [`report::Section`]; `chat-bench all` runs every
//! scenario and writes `docs/performance.md` with its plots. Figures are printed, never
//! asserted: speed targets live here, not in timed tests.
//!
//! [`driver`] (stack, simulated users, WebSocket clients, process probes), [`stats`]
//! and [`plot`] serve the load and soak runs.

pub mod cli;
pub mod coldstart;
pub mod cost;
pub mod driver;
pub mod load;
pub mod plot;
pub mod report;
pub mod size;
pub mod soak;
pub mod stats;
pub mod work;
