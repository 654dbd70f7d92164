//! ws-message (to be written).
