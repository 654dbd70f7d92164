//! http-users (to be written).
