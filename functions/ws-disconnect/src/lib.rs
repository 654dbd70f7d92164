//! ws-disconnect (to be written).
