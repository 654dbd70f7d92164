//! http-devices (to be written).
