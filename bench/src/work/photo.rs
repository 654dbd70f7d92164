//! The "message with one photo" paragraph of the work section (issue #22): counted
//! from the code, since the recording proxies do not see S3 yet.

/// Markdown, placed after the blocking paragraph.
pub const MARKDOWN: &str = r#"
**Message with one photo (issue #22).** Counted from the code (`functions/http-chats/src/attachments.rs`, `chat_core::attachments`,
`functions/thumbnailer`), not yet measured by `chat-bench work` (its recording proxies
cover DynamoDB and SNS, not S3): a REST send with one 2 MB photo in a direct chat, the
partner online and fetching the thumbnail, then the photo.

| step | function | DynamoDB calls | RCU | WCU | S3 requests | other | sequential round trips |
| --- | --- | --- | --- | --- | --- | --- | --- |
| `POST /chats/{chatId}/attachments` | http-chats | GetItem (Users, bearer) + 2 GetItem (Chats, Members) + PutItem (Attachments) | 3 | 2 (item + `byUploader`) | none (presigning is local) | | 3: Users → Chats ‖ Members → PutItem |
| upload | client → S3 | | | | 1 PUT (2 MB) | | 1 |
| send with the attachment | http-chats | the text send's calls + GetItem (Attachments) + 1 more item in the transaction | text + 1 | text + 3 (the attachment's Update, transactional, and its index) | 1 HEAD (GET-class), 1 DeleteObjectTagging (free) | 1 SNS Publish (thumbnail job) | text send + 3: GetItem (Attachments) → HeadObject → DeleteObjectTagging, before the chat read and the transaction |
| thumbnail | thumbnailer (1,024 MB) | GetItem + UpdateItem (Attachments) | 1 | 2 | 1 GET (2 MB), 1 PUT (~20 KB) | 1 Lambda invocation (~0.3 s for a 12 MP JPEG, estimate) | 4 |
| partner fetches thumbnail + photo | http-chats, client | 2 x (GetItem Users + GetItem Chats, Members, Attachments) | 8 | 0 | 2 GET (~20 KB + 2 MB) | | 2 each: Users → three reads in parallel; then the S3 GET |

Cost per million such messages, at the list prices below: S3 requests ~$10.7 (2 PUT at
$0.005/1,000, 3 GET at $0.0004/1,000), storage ~$46 per month and growing (2 TB at
$0.023/GB-month), thumbnailer ~$4.2 (0.3 GB-s at $0.0000133/GB-s on arm64, plus
requests), SNS $0.5, DynamoDB ~$5 (the extra ~7 WRU and ~12 RRU). The dominant term is
data transfer out of AWS: a 2 MB photo downloaded once costs $0.00018 at $0.09/GB, $180
per million downloads (a CDN in front of presigned GETs is the next step once photos
are common). The upload itself (data transfer in) is free.
"#;
