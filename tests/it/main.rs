//! The integration and end-to-end tests: one test binary, one module per area, so the
//! local gateway and the nine functions are linked once (`cargo test -p chat-tests
//! --test it`; one area: `cargo test -p chat-tests --test it -- faults::`). The
//! harness they share (stacks, API clients, seeding, the OpenAPI checker, the log and
//! metrics capture) is the `chat_tests` crate in `tests/src/`. A new area is a new
//! file here and a `mod` line below.

mod asyncapi;
mod attachments;
mod auth;
mod authz;
mod blocks;
mod chats;
mod edits;
mod faults;
mod gateway_fidelity;
mod gateway_http;
mod gateway_routes;
mod gateway_sns;
mod gateway_stack;
mod gateway_websocket;
mod group_requests;
mod lifecycle;
mod limits;
mod local_backend;
mod member_cap;
mod messaging_services;
mod observability;
mod openapi;
mod push;
mod realtime;
mod security;
mod store;
mod template;
