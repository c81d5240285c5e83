//! The WebSocket edge: one [`session`] per connection turns wire messages into room
//! inputs and room outputs into wire messages. It decides nothing about visits; the
//! room state machine does.

pub mod session;
mod throttle;
