//! Typed configuration. Every setting a function reads comes from its environment
//! (in AWS: the template's `Environment`; locally: the same names, filled in by the
//! local gateway). `Env` is a snapshot of those variables so that one process can host
//! several functions or several isolated stacks (the local gateway, the tests), each
//! with its own values; `Env::from_process()` is what a Lambda's `main` uses.

use std::collections::HashMap;

/// A set of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// A required variable is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError(format!("{key} is not set")))
    }

    pub fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError(format!("{key}={v:?} is not valid"))),
        }
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    pub fn vars(&self) -> &HashMap<String, String> {
        &self.vars
    }
}

/// The DynamoDB table names, one variable each (see README, Configuration).
#[derive(Debug, Clone)]
pub struct Tables {
    pub users: String,
    pub user_names: String,
    pub sessions: String,
    pub chats: String,
    pub members: String,
    pub messages: String,
    pub message_dedup: String,
    pub connections: String,
    pub presence: String,
    pub devices: String,
    pub attachments: String,
}

impl Tables {
    /// Environment variable for each table, with the template's logical id of its table.
    pub const VARS: [(&'static str, &'static str); 11] = [
        ("USERS_TABLE", "UsersTable"),
        ("USER_NAMES_TABLE", "UserNamesTable"),
        ("SESSIONS_TABLE", "SessionsTable"),
        ("CHATS_TABLE", "ChatsTable"),
        ("MEMBERS_TABLE", "MembersTable"),
        ("MESSAGES_TABLE", "MessagesTable"),
        ("MESSAGE_DEDUP_TABLE", "MessageDedupTable"),
        ("CONNECTIONS_TABLE", "ConnectionsTable"),
        ("PRESENCE_TABLE", "PresenceTable"),
        ("DEVICES_TABLE", "DevicesTable"),
        ("ATTACHMENTS_TABLE", "AttachmentsTable"),
    ];

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Tables {
            users: env.require("USERS_TABLE")?.to_owned(),
            user_names: env.require("USER_NAMES_TABLE")?.to_owned(),
            sessions: env.require("SESSIONS_TABLE")?.to_owned(),
            chats: env.require("CHATS_TABLE")?.to_owned(),
            members: env.require("MEMBERS_TABLE")?.to_owned(),
            messages: env.require("MESSAGES_TABLE")?.to_owned(),
            message_dedup: env.require("MESSAGE_DEDUP_TABLE")?.to_owned(),
            connections: env.require("CONNECTIONS_TABLE")?.to_owned(),
            presence: env.require("PRESENCE_TABLE")?.to_owned(),
            devices: env.require("DEVICES_TABLE")?.to_owned(),
            attachments: env.require("ATTACHMENTS_TABLE")?.to_owned(),
        })
    }

    /// Names `{prefix}-{LogicalId}`, the local stack's convention.
    pub fn with_prefix(prefix: &str) -> Self {
        let n = |logical: &str| format!("{prefix}-{logical}");
        Tables {
            users: n("UsersTable"),
            user_names: n("UserNamesTable"),
            sessions: n("SessionsTable"),
            chats: n("ChatsTable"),
            members: n("MembersTable"),
            messages: n("MessagesTable"),
            message_dedup: n("MessageDedupTable"),
            connections: n("ConnectionsTable"),
            presence: n("PresenceTable"),
            devices: n("DevicesTable"),
            attachments: n("AttachmentsTable"),
        }
    }
}

/// The SNS platform applications this deployment pushes through (template parameters
/// `ApnsPlatformApplicationArn` / `FcmPlatformApplicationArn`, given to functions as
/// `APNS_PLATFORM_APPLICATION_ARN` / `FCM_PLATFORM_APPLICATION_ARN`; empty = that
/// platform is not configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformApps {
    pub apns: Option<String>,
    pub fcm: Option<String>,
}

impl PlatformApps {
    pub fn from_env(env: &Env) -> Self {
        PlatformApps {
            apns: env.get("APNS_PLATFORM_APPLICATION_ARN").map(str::to_owned),
            fcm: env.get("FCM_PLATFORM_APPLICATION_ARN").map(str::to_owned),
        }
    }

    /// The application of one platform, if configured.
    pub fn get(&self, platform: crate::model::PushPlatform) -> Option<&str> {
        match platform {
            crate::model::PushPlatform::Apns => self.apns.as_deref(),
            crate::model::PushPlatform::Fcm => self.fcm.as_deref(),
        }
    }

    /// Whether any platform is configured.
    pub fn any(&self) -> bool {
        self.apns.is_some() || self.fcm.is_some()
    }
}

/// Where attachments live (template: `ATTACHMENTS_BUCKET`, `MAX_ATTACHMENT_BYTES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentConfig {
    pub bucket: String,
    /// The largest upload a client may declare (bytes).
    pub max_bytes: u64,
    /// Where sends announce new photos for the thumbnailer (`THUMBNAIL_TOPIC_ARN`;
    /// only the sending functions have it).
    pub thumbnail_topic_arn: Option<String>,
}

impl AttachmentConfig {
    /// 25 MB, the template's default.
    pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;

    /// `None` when no bucket is configured (attachments are then refused).
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(bucket) = env.get("ATTACHMENTS_BUCKET") else {
            return Ok(None);
        };
        Ok(Some(AttachmentConfig {
            bucket: bucket.to_owned(),
            max_bytes: env.parse_or("MAX_ATTACHMENT_BYTES", Self::DEFAULT_MAX_BYTES)?,
            thumbnail_topic_arn: env.get("THUMBNAIL_TOPIC_ARN").map(str::to_owned),
        }))
    }
}
