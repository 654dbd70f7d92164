//! http-chats (to be written).
