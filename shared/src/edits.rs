//! Editing and deleting stored messages: the services both edges call (`editMessage`
//! / `deleteMessage` over the WebSocket, `PATCH` / `DELETE
//! /chats/{chatId}/messages/{position}` over REST). The store does the change in one
//! transaction ([`crate::store::Store::edit_message`]); this module announces it with
//! a `messageEdited` / `messageDeleted` event to every connection of every member (the
//! caller's own connections included: over the WebSocket the event is the answer).
//!
//! Decisions (docs/protocol.md, "Editing and deleting"): no earlier versions are kept
//! (as Stream Chat; the text is replaced), edits are not time-limited, deleting erases
//! the text in storage and keeps the position as a tombstone, pushes already shown are
//! not recalled, and there is no "delete for me". Neither an edit nor a deletion
//! changes unread counts or sends a push. Deleting a message with attachments deletes
//! their objects, thumbnails and records too.

use crate::error::ApiError;
use crate::ids::{ChatId, UserId};
use crate::input::MessageText;
use crate::messaging::ChatServices;
use crate::model::now_millis;
use crate::protocol::{MessageChanged, ServerEvent};
use crate::store::{ChangeKind, MessageChange};

impl ChatServices {
    /// `user` replaces the text of their message at `position` of `chat_id`.
    pub async fn edit_message(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        position: u64,
        text: &MessageText,
    ) -> Result<MessageChange, ApiError> {
        let change = self
            .store()
            .edit_message(chat_id, position, user, text, now_millis())
            .await?;
        self.announce_change(&change, user).await;
        Ok(change)
    }

    /// `user` deletes the message at `position` of `chat_id` for everyone. Deleting a
    /// deleted message is a no-op (no event).
    pub async fn delete_message(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        position: u64,
    ) -> Result<MessageChange, ApiError> {
        let change = self
            .store()
            .delete_message(chat_id, position, user, now_millis())
            .await?;
        if !change.erased_attachments.is_empty() {
            // The message no longer names them: delete the objects (and thumbnails) and
            // their records, so that nobody can download a deleted photo by its id. A
            // failure is logged; the records' owner's account deletion removes any left.
            let mut gone = change.message.clone();
            gone.attachments = change.erased_attachments.clone();
            if let Err(e) = crate::attachments::delete_message_attachments(
                self.store(),
                self.attachments(),
                &gone,
            )
            .await
            {
                e.log();
            }
        }
        if change.changed {
            self.announce_change(&change, user).await;
        }
        Ok(change)
    }

    /// The change is stored: a failed announcement is logged, not an error (members
    /// catch up with `sync`).
    async fn announce_change(&self, change: &MessageChange, by: &UserId) {
        let body = MessageChanged::new(&change.message, change.chat.change_seq, by);
        let event = match change.kind {
            ChangeKind::Edited => ServerEvent::MessageEdited(body),
            ChangeKind::Deleted => ServerEvent::MessageDeleted(body),
        };
        if let Err(e) = self
            .to_members(&change.chat.chat_id, &event, None, None)
            .await
        {
            e.log();
        }
    }
}
