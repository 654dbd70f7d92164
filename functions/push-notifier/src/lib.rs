//! push-notifier (to be written).
