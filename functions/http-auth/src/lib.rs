//! http-auth (to be written).
