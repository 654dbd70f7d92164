//! The store: the only module that knows how the domain is laid out in DynamoDB.
//! Everything else calls its methods with domain types and gets domain types back.
//!
//! Ten tables (defined once, in `infra/template.yaml`; see `docs/data-model.md` for
//! keys, indexes, sizes and which call serves which operation). Every request-path
//! access is a GetItem, Query, BatchGetItem, conditional write or transaction; there is
//! no Scan.
//!
//! Ordering and idempotency: each chat item holds `lastPosition`. Appending a message
//! is one transaction that moves `lastPosition` from the value just read to the next
//! one (conditional), writes the message at that position, claims the sender's
//! `clientMessageId` in the dedup table, and checks the sender's membership. Either
//! all four happen or none, so positions are gap-free and a retried send finds its
//! original. Concurrent senders race on the condition and the loser retries with a
//! fresh read (bounded, with jittered backoff).

mod attachments;
mod blocks;
mod changes;
mod chats;
mod codec;
mod connections;
mod credentials;
mod device_sessions;
mod devices;
mod lifecycle;
mod messages;
mod receipts;
mod requests;
mod sessions;
mod users;

pub use blocks::MAX_BLOCKS;
pub use changes::{ChangeKind, LogEntry, LogPage, MessageChange};
pub use chats::{ChatPage, MembershipChange, NewGroup};
pub use connections::{
    RateWindow, WindowCount, WindowOpened, WindowReset, CONNECT_GRACE_MS, MAX_CONNECTIONS_PER_USER,
};
pub use credentials::LoginReservation;
pub use devices::{PushClaim, PushKey, PUSH_CLAIM_LEASE_MS, PUSH_MARKER_TTL_MS};
pub use lifecycle::{AccountStatus, PurgeState, SenderKey, SenderPage};
pub use messages::{Appended, HistoryPage, NewMessage};
pub use receipts::ReceiptKind;
pub use requests::{GroupCreated, MAX_GROUPS_PER_DAY, REQUEST_CLAIM_TTL_MS};
pub use sessions::Rotation;
pub use users::ProfileUpdate;

use crate::config::Tables;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::time::Duration;

/// Why a store call failed. Domain outcomes (not found, not a member, a conflict) are
/// variants of their own so that the edges can answer them precisely.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not a member of this chat")]
    NotMember,
    #[error("conflict: {0}")]
    Conflict(Conflict),
    #[error("too much contention on one item; retries exhausted")]
    Contention,
    #[error("DynamoDB {op} failed temporarily ({code})")]
    Unavailable {
        op: &'static str,
        code: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("DynamoDB {op} failed ({code})")]
    Failed {
        op: &'static str,
        code: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("corrupt item in {table}: {reason}")]
    Corrupt { table: String, reason: String },
}

/// Why a write conflicts with the current state (a domain refusal, not a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The user name is claimed, in any letter case.
    UserNameTaken,
    /// The group would exceed `MAX_GROUP_MEMBERS`.
    GroupFull,
    /// A membership change named no one.
    NoMembers,
    /// The user to add is a member already.
    AlreadyMember,
    /// A group-only change on a direct chat.
    NotAGroup,
    /// Only an admin of the group may make this change.
    NotAdmin,
    /// Only the message's author (or, deleting, a group admin) may change it.
    NotAuthor,
    /// The message was deleted; it cannot be edited.
    MessageDeleted,
    /// The other user has blocked the caller.
    Blocked,
    /// The caller has blocked the other user (unblock first).
    YouBlocked,
    /// The block list is full (`MAX_BLOCKS`).
    TooManyBlocks,
    /// An attachment named in a send is not this sender's pending upload to this chat
    /// (already in another message, another chat's, someone else's, or expired).
    AttachmentUnavailable,
    /// The user created `MAX_GROUPS_PER_DAY` groups today.
    TooManyGroups,
    /// The user holds the most WebSocket connections allowed.
    TooManyConnections,
}

impl Conflict {
    /// The snake_case name (the client error code, for those that become `409`).
    pub fn code(self) -> &'static str {
        match self {
            Conflict::UserNameTaken => "user_name_taken",
            Conflict::GroupFull => "group_full",
            Conflict::NoMembers => "no_members",
            Conflict::AlreadyMember => "already_member",
            Conflict::NotAGroup => "not_a_group",
            Conflict::NotAdmin => "not_admin",
            Conflict::NotAuthor => "not_author",
            Conflict::MessageDeleted => "message_deleted",
            Conflict::Blocked => "blocked",
            Conflict::YouBlocked => "you_blocked",
            Conflict::TooManyBlocks => "too_many_blocks",
            Conflict::TooManyGroups => "too_many_groups",
            Conflict::AttachmentUnavailable => "attachment_unavailable",
            Conflict::TooManyConnections => "too_many_connections",
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl StoreError {
    /// Whether retrying later may succeed (throttling, time-outs, DynamoDB down).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Contention
        )
    }

    pub(crate) fn sdk<E>(op: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let transient_code = |c: &str| {
            matches!(
                c,
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
                    | "TransactionInProgressException"
            )
        };
        match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StoreError::Unavailable {
                op,
                code: "unreachable".into(),
                source: Box::new(e),
            },
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("unknown").to_owned();
                if transient_code(&code) || se.raw().status().is_server_error() {
                    StoreError::Unavailable {
                        op,
                        code,
                        source: Box::new(e),
                    }
                } else {
                    StoreError::Failed {
                        op,
                        code,
                        source: Box::new(e),
                    }
                }
            }
            _ => StoreError::Failed {
                op,
                code: "unknown".into(),
                source: Box::new(e),
            },
        }
    }

    /// A short, low-cardinality name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::NotMember => "not_member",
            StoreError::Conflict(_) => "conflict",
            StoreError::Contention => "contention",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Failed { .. } => "failed",
            StoreError::Corrupt { .. } => "corrupt",
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handle on the tables; cheap to clone (the SDK client is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: aws_sdk_dynamodb::Client,
    pub(crate) t: Tables,
}

impl Store {
    pub fn new(db: aws_sdk_dynamodb::Client, tables: Tables) -> Self {
        Store { db, t: tables }
    }

    pub fn tables(&self) -> &Tables {
        &self.t
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.db
    }
}

/// How many times an optimistic transaction is tried before giving up.
pub(crate) const MAX_ATTEMPTS: u32 = 40;

/// Jittered, growing pause between optimistic attempts: 1-4 ms at first, at most ~50 ms.
pub(crate) async fn backoff(attempt: u32) {
    use rand::Rng;
    let cap = (1u64 << attempt.min(6)).min(50);
    let ms = rand::thread_rng().gen_range(1..=cap.max(2) * 2);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Seconds since the epoch, for DynamoDB TTL attributes.
pub(crate) fn ttl_seconds(ms: i64) -> i64 {
    ms / 1000
}
