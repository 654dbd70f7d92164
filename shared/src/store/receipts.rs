//! Receipts: moving a member's delivered and read positions forward in one write.
//!
//! The caller has just read the member item (consistently, in the chat's members
//! `Query` that the receipt's fan-out needs anyway), so the store decides from that
//! item what must change and makes one conditional `UpdateItem`: a read receipt moves
//! `readPos` and, when it was behind, `deliveredPos` in the same write (it took two
//! before). Positions never move back: the condition refuses a write that would, and
//! its failure returns the stored item (`ALL_OLD`) so that no second read is needed to
//! tell "already there" from "no longer a member".

use super::codec::{n, s, Reader};
use super::{Store, StoreError, StoreResult};
use crate::model::Membership;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

/// Which position a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// `deliveredPos`.
    Delivered,
    /// `readPos`, and `deliveredPos` with it when it was behind.
    Read,
}

/// What one conditional update found when its condition failed.
enum Refused {
    /// The member item is gone.
    NotMember,
    /// The stored positions (delivered, read).
    Stored(u64, u64),
}

impl Store {
    /// Move `seen`'s position of `kind` forward to `pos` (never back), given `seen`, the
    /// member item as just read. Returns whether the position of `kind` moved. No write
    /// at all when `seen` is already there; one `UpdateItem` otherwise (two only when a
    /// concurrent delivered receipt overtook a read receipt between the read and the
    /// write). `NotMember` when the member item is gone. The caller checks
    /// `pos <= chat.last_position` first.
    pub async fn advance_receipt(
        &self,
        seen: &Membership,
        kind: ReceiptKind,
        pos: u64,
    ) -> StoreResult<bool> {
        let (delivered, read) = match kind {
            ReceiptKind::Delivered if seen.delivered_position >= pos => return Ok(false),
            ReceiptKind::Delivered => (true, false),
            ReceiptKind::Read if seen.read_position >= pos => return Ok(false),
            ReceiptKind::Read => (seen.delivered_position < pos, true),
        };
        match self.advance_positions(seen, delivered, read, pos).await? {
            None => Ok(true),
            Some(Refused::NotMember) => Err(StoreError::NotMember),
            Some(Refused::Stored(stored_delivered, stored_read)) => match kind {
                ReceiptKind::Delivered => {
                    debug_assert!(stored_delivered >= pos);
                    Ok(false)
                }
                ReceiptKind::Read if stored_read >= pos => Ok(false),
                // Only the delivered part was refused (overtaken): move the read one.
                ReceiptKind::Read => match self.advance_positions(seen, false, true, pos).await? {
                    None => Ok(true),
                    Some(Refused::NotMember) => Err(StoreError::NotMember),
                    Some(Refused::Stored(..)) => Ok(false),
                },
            },
        }
    }

    /// One conditional `UpdateItem` setting `deliveredPos` and/or `readPos` to `pos`,
    /// each only if it is below `pos`. `None` when it was written.
    async fn advance_positions(
        &self,
        member: &Membership,
        delivered: bool,
        read: bool,
        pos: u64,
    ) -> StoreResult<Option<Refused>> {
        let mut sets = Vec::new();
        let mut conditions = vec!["attribute_exists(userId)".to_owned()];
        let mut req = self
            .db
            .update_item()
            .table_name(&self.t.members)
            .key("chatId", s(member.chat_id.as_str()))
            .key("userId", s(member.user_id.as_str()))
            .expression_attribute_values(":p", n(pos))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (on, name, attr) in [(delivered, "#d", "deliveredPos"), (read, "#r", "readPos")] {
            if on {
                sets.push(format!("{name} = :p"));
                conditions.push(format!("(attribute_not_exists({name}) OR {name} < :p)"));
                req = req.expression_attribute_names(name, attr);
            }
        }
        let res = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .send()
            .await;
        match res {
            Ok(_) => Ok(None),
            Err(e) if super::codec::is_condition_failed(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                    _ => None,
                };
                match old {
                    None => Ok(Some(Refused::NotMember)),
                    Some(item) => {
                        let r = Reader::new(&item, &self.t.members);
                        Ok(Some(Refused::Stored(
                            r.num_or("deliveredPos", 0)?,
                            r.num_or("readPos", 0)?,
                        )))
                    }
                }
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}
