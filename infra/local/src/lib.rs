//! chat-local (to be written).
