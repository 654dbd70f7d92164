//! Reading and writing attribute values: small helpers so the item shapes in the
//! sibling modules read as plain field lists, and a missing or mistyped attribute is a
//! `StoreError::Corrupt` naming the table and attribute rather than a panic.

use super::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

/// A typed view of one item, for reading attributes with errors that name them.
pub(crate) struct Reader<'a> {
    pub item: &'a Item,
    pub table: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(item: &'a Item, table: &'a str) -> Self {
        Reader { item, table }
    }

    fn corrupt(&self, attr: &str, what: &str) -> StoreError {
        StoreError::Corrupt {
            table: self.table.to_owned(),
            reason: format!("{attr}: {what}"),
        }
    }

    pub fn str(&self, attr: &str) -> Result<&'a str, StoreError> {
        match self.item.get(attr) {
            Some(AttributeValue::S(v)) => Ok(v.as_str()),
            Some(_) => Err(self.corrupt(attr, "not a string")),
            None => Err(self.corrupt(attr, "missing")),
        }
    }

    pub fn string(&self, attr: &str) -> Result<String, StoreError> {
        self.str(attr).map(str::to_owned)
    }

    pub fn opt_string(&self, attr: &str) -> Result<Option<String>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.corrupt(attr, "not a string")),
        }
    }

    pub fn num<T: std::str::FromStr>(&self, attr: &str) -> Result<T, StoreError> {
        match self.item.get(attr) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| self.corrupt(attr, "bad number")),
            Some(_) => Err(self.corrupt(attr, "not a number")),
            None => Err(self.corrupt(attr, "missing")),
        }
    }

    pub fn num_or<T: std::str::FromStr>(&self, attr: &str, default: T) -> Result<T, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(default),
            _ => self.num(attr),
        }
    }

    pub fn opt_num<T: std::str::FromStr>(&self, attr: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            _ => self.num(attr).map(Some),
        }
    }

    pub fn bool_or(&self, attr: &str, default: bool) -> Result<bool, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(default),
            Some(AttributeValue::Bool(v)) => Ok(*v),
            Some(_) => Err(self.corrupt(attr, "not a boolean")),
        }
    }

    /// Parse a string attribute with a parser (ids, enums).
    pub fn parsed<T, E>(
        &self,
        attr: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let raw = self.str(attr)?;
        parse(raw).map_err(|_| self.corrupt(attr, "does not parse"))
    }

    pub fn opt_parsed<T, E>(
        &self,
        attr: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_string(attr)? {
            None => Ok(None),
            Some(raw) => parse(&raw)
                .map(Some)
                .map_err(|_| self.corrupt(attr, "does not parse")),
        }
    }

    /// A string attribute holding JSON.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        attr: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_string(attr)? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|_| self.corrupt(attr, "bad JSON")),
        }
    }

    pub fn map(
        &self,
        attr: &str,
    ) -> Result<Option<&'a HashMap<String, AttributeValue>>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::M(m)) => Ok(Some(m)),
            Some(_) => Err(self.corrupt(attr, "not a map")),
        }
    }
}

/// Which items of a cancelled transaction failed their condition, in item order.
pub(crate) fn cancelled_conditions<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<Vec<bool>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let se = e.as_service_error()?;
    match se {
        TransactWriteItemsError::TransactionCanceledException(tc) => Some(
            tc.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a cancelled transaction failed only for a transaction conflict (another
/// transaction touching the same items), which is worth retrying.
pub(crate) fn is_transaction_conflict<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
            tc.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("TransactionConflict") | Some("ThrottlingError")
                )
            })
        }
        _ => false,
    }
}

/// Whether a single-item write failed its condition.
pub(crate) fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}
