//! ws-connect (to be written).
