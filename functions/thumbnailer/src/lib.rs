//! `thumbnailer`: makes the preview of a photo attached to a message, subscribed to
//! `ThumbnailTopic` (a send publishes one [`ThumbnailJob`] per new JPEG, PNG, GIF or
//! WebP attachment). It reads the upload from S3, decodes it with a pure-Rust decoder
//! under hard limits ([`MAX_DIMENSION`] pixels a side, [`MAX_DECODE_BYTES`] of
//! memory, [`MAX_SOURCE_BYTES`] of input), writes a JPEG of at most [`THUMB_SIDE`]
//! pixels a side to `thumbs/{chatId}/{attachmentId}` and records both sizes on the
//! attachment. An image it cannot or may not read (corrupt, a decompression bomb,
//! huge dimensions) is recorded as failed and the function succeeds: clients show a
//! generic file. Only S3/DynamoDB failures fail the invocation (Lambda retries).

use aws_lambda_events::sns::SnsEvent;
use chat_core::attachments::{Attachment, Preview, ThumbnailJob};
use chat_core::config::{AttachmentConfig, Env, Tables};
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::store::Store;
use image::{GenericImageView, ImageFormat, ImageReader, Limits};
use lambda_runtime::{Context, Error};
use std::io::Cursor;

/// The longer side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Images wider or taller than this are refused before decoding.
pub const MAX_DIMENSION: u32 = 12_000;
/// Memory the decoder may allocate.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Uploads larger than this are not read.
pub const MAX_SOURCE_BYTES: u64 = 25 * 1024 * 1024;

/// What the function holds between invocations.
pub struct Thumbnailer {
    store: Store,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

/// Why an image got no thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not an image this decoder reads safely: {0}")]
    Image(#[from] image::ImageError),
    #[error("could not read the image: {0}")]
    Io(#[from] std::io::Error),
}

/// A made thumbnail: the JPEG and the sizes.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub jpeg: Vec<u8>,
    pub preview: Preview,
}

/// Decode `bytes` under the limits and make the JPEG thumbnail.
pub fn make_thumbnail(bytes: &[u8]) -> Result<Thumbnail, Refused> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode()?;
    let (width, height) = image.dimensions();
    let thumb = image.thumbnail(THUMB_SIDE, THUMB_SIDE).into_rgb8();
    let mut jpeg = Vec::new();
    thumb.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)?;
    Ok(Thumbnail {
        preview: Preview {
            width,
            height,
            thumb_width: thumb.width(),
            thumb_height: thumb.height(),
        },
        jpeg,
    })
}

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    let init = async move {
        let sdk = chat_core::aws::sdk_config(&env).await;
        let config = AttachmentConfig::from_env(&env)?
            .ok_or_else(|| Error::from("ATTACHMENTS_BUCKET is not set"))?;
        Ok(Thumbnailer {
            store: Store::new(
                chat_core::aws::dynamodb(&sdk, &env),
                Tables::from_env(&env)?,
            ),
            s3: chat_core::aws::s3(&sdk, &env),
            bucket: config.bucket,
        })
    };
    function::with_state(init, |t, event: SnsEvent, _ctx: Context| async move {
        handle(&t, event).await
    })
}

/// Handle one SNS delivery: each record a [`ThumbnailJob`]. Records that are not jobs,
/// or name no attachment, are logged and dropped (retrying cannot fix them).
pub async fn handle(t: &Thumbnailer, event: SnsEvent) -> Result<serde_json::Value, Error> {
    let mut outcomes = Vec::new();
    for record in event.records {
        let job: ThumbnailJob = match serde_json::from_str::<ThumbnailJob>(&record.sns.message) {
            Ok(j) if j.kind == ThumbnailJob::KIND => j,
            _ => {
                tracing::error!(message_id = %record.sns.message_id, "not a thumbnail job; dropped");
                continue;
            }
        };
        outcomes.push(run(t, &job).await?);
    }
    Ok(serde_json::json!({ "outcomes": outcomes }))
}

/// One job: `"made"`, `"refused"` or `"skipped"` (no such attachment, not an image,
/// another chat's, too large).
pub async fn run(t: &Thumbnailer, job: &ThumbnailJob) -> Result<&'static str, Error> {
    let Some(a) = t.store.get_attachment(&job.attachment_id).await? else {
        return Ok("skipped");
    };
    if a.chat_id != job.chat_id || !a.content_type.is_inline_image() {
        return Ok("skipped");
    }
    if a.size > MAX_SOURCE_BYTES {
        t.store
            .set_attachment_preview(&a.attachment_id, None)
            .await?;
        return Ok("refused");
    }
    let bytes = read_object(t, &a).await?;
    // Decoding is CPU-bound: off the async threads.
    let made = tokio::task::spawn_blocking(move || make_thumbnail(&bytes))
        .await
        .map_err(|e| Error::from(format!("thumbnail task: {e}")))?;
    match made {
        Ok(thumb) => {
            t.s3.put_object()
                .bucket(&t.bucket)
                .key(a.thumbnail_key())
                .content_type("image/jpeg")
                .body(thumb.jpeg.into())
                .send()
                .await
                .map_err(|e| Error::from(format!("PutObject {}: {e}", a.thumbnail_key())))?;
            t.store
                .set_attachment_preview(&a.attachment_id, Some(&thumb.preview))
                .await?;
            tracing::info!(attachment = %a.attachment_id, width = thumb.preview.width, height = thumb.preview.height, "thumbnail made");
            Ok("made")
        }
        Err(refused) => {
            tracing::warn!(attachment = %a.attachment_id, reason = %refused, "no thumbnail");
            t.store
                .set_attachment_preview(&a.attachment_id, None)
                .await?;
            Ok("refused")
        }
    }
}

async fn read_object(t: &Thumbnailer, a: &Attachment) -> Result<Vec<u8>, Error> {
    let out =
        t.s3.get_object()
            .bucket(&t.bucket)
            .key(a.object_key())
            .send()
            .await
            .map_err(|e| Error::from(format!("GetObject {}: {e}", a.object_key())))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| Error::from(format!("reading {}: {e}", a.object_key())))?;
    Ok(body.into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img: ImageBuffer<Rgb<u8>, Vec<u8>> =
            ImageBuffer::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn a_photo_shrinks_to_the_thumbnail_side_keeping_its_shape() {
        let t = make_thumbnail(&png(800, 400)).expect("thumbnail");
        assert_eq!((t.preview.width, t.preview.height), (800, 400));
        assert_eq!((t.preview.thumb_width, t.preview.thumb_height), (320, 160));
        assert_eq!(&t.jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    }

    #[test]
    fn corrupt_and_hostile_images_are_refused_not_crashes() {
        assert!(make_thumbnail(b"not an image at all").is_err());
        let mut truncated = png(50, 50);
        truncated.truncate(60);
        assert!(make_thumbnail(&truncated).is_err());
        // A PNG that claims 100,000 x 100,000 pixels (40 GB decoded).
        assert!(make_thumbnail(&png_claiming(100_000, 100_000)).is_err());
    }

    /// A small valid PNG whose header claims `w` x `h` (CRC fixed up).
    pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut b = png(4, 4);
        // signature (8) + length (4) + "IHDR" (4): width at 16, height at 20.
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= byte as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
