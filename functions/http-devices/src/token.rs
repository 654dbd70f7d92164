//! Push tokens as clients send them, checked before any SNS call.
//!
//! - APNs device tokens: hexadecimal (case-insensitive; stored lowercase so the same
//!   token in another case is the same device), an even number of digits, 64 to 200
//!   (today's tokens are 32 bytes = 64 digits; Apple says they may grow).
//! - FCM registration tokens: 32 to 1024 characters of `A-Z a-z 0-9 _ - :` (what FCM
//!   issues; no spaces, no other punctuation).

use chat_core::input::InvalidInput;
use chat_core::model::PushPlatform;

pub const APNS_MIN: usize = 64;
pub const APNS_MAX: usize = 200;
pub const FCM_MIN: usize = 32;
pub const FCM_MAX: usize = 1024;

/// A token that passed its platform's checks, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushToken(String);

impl PushToken {
    pub fn parse(platform: PushPlatform, raw: &str) -> Result<Self, InvalidInput> {
        let bad = |reason: String| Err(InvalidInput::new("token", reason));
        match platform {
            PushPlatform::Apns => {
                if !(APNS_MIN..=APNS_MAX).contains(&raw.len()) {
                    return bad(format!(
                        "an APNs token has {APNS_MIN} to {APNS_MAX} hexadecimal digits"
                    ));
                }
                let whole_bytes = raw.as_bytes().chunks(2).all(|pair| pair.len() == 2);
                if !whole_bytes || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad("an APNs token is an even number of hexadecimal digits".into());
                }
                Ok(PushToken(raw.to_ascii_lowercase()))
            }
            PushPlatform::Fcm => {
                if !(FCM_MIN..=FCM_MAX).contains(&raw.len()) {
                    return bad(format!(
                        "an FCM token has {FCM_MIN} to {FCM_MAX} characters"
                    ));
                }
                let ok = raw
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'));
                if !ok {
                    return bad("an FCM token has only letters, digits, '_', '-' and ':'".into());
                }
                Ok(PushToken(raw.to_owned()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_tokens() {
        let t = "A1".repeat(32);
        assert_eq!(
            PushToken::parse(PushPlatform::Apns, &t).unwrap().as_str(),
            "a1".repeat(32)
        );
        assert!(PushToken::parse(PushPlatform::Apns, &"ab".repeat(100)).is_ok());
        assert!(PushToken::parse(PushPlatform::Apns, &"ab".repeat(31)).is_err());
        assert!(PushToken::parse(PushPlatform::Apns, &"ab".repeat(101)).is_err());
        assert!(PushToken::parse(PushPlatform::Apns, &format!("{}a", "ab".repeat(32))).is_err());
        assert!(PushToken::parse(PushPlatform::Apns, &"zz".repeat(32)).is_err());
        assert!(PushToken::parse(PushPlatform::Apns, "").is_err());
        let e = PushToken::parse(PushPlatform::Apns, "x").unwrap_err();
        assert_eq!(e.field, "token");
    }

    #[test]
    fn fcm_tokens() {
        let t = "dGVzdA:APA91bH-x_y".to_owned() + &"k".repeat(140);
        assert_eq!(PushToken::parse(PushPlatform::Fcm, &t).unwrap().as_str(), t);
        assert!(PushToken::parse(PushPlatform::Fcm, &"a".repeat(31)).is_err());
        assert!(PushToken::parse(PushPlatform::Fcm, &"a".repeat(1025)).is_err());
        assert!(PushToken::parse(PushPlatform::Fcm, &format!("{} ", "a".repeat(40))).is_err());
        assert!(PushToken::parse(PushPlatform::Fcm, &format!("{}/", "a".repeat(40))).is_err());
        assert!(PushToken::parse(PushPlatform::Fcm, &format!("{}é", "a".repeat(40))).is_err());
        // Case matters for FCM tokens: not folded.
        assert_eq!(
            PushToken::parse(PushPlatform::Fcm, &"Ab".repeat(20))
                .unwrap()
                .as_str(),
            "Ab".repeat(20)
        );
    }

    proptest::proptest! {
        /// Any string: refused with `token` named, or accepted in canonical form that
        /// parses to itself (a token is never stored in two spellings).
        #[test]
        fn any_token_is_refused_or_canonical(
            raw in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[0-9a-fA-F]{60,204}",
                "[A-Za-z0-9_:\\-]{28,40}",
                "[ -~]{30,70}",
            ],
            fcm in proptest::prelude::any::<bool>(),
        ) {
            let platform = if fcm { PushPlatform::Fcm } else { PushPlatform::Apns };
            match PushToken::parse(platform, &raw) {
                Ok(t) => {
                    proptest::prop_assert_eq!(PushToken::parse(platform, t.as_str()), Ok(t.clone()));
                    if fcm {
                        proptest::prop_assert!((FCM_MIN..=FCM_MAX).contains(&raw.len()) && t.as_str() == raw);
                    } else {
                        proptest::prop_assert!((APNS_MIN..=APNS_MAX).contains(&raw.len()) && raw.len() % 2 == 0);
                        proptest::prop_assert_eq!(t.as_str(), raw.to_ascii_lowercase());
                    }
                }
                Err(e) => proptest::prop_assert_eq!(e.field, "token"),
            }
        }
    }
}
