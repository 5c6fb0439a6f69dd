//! The sync protocol codec, `shoal::protocol::sync::Message::decode`, on any bytes (what a
//! server or client reads off a WebSocket).
//!
//! Checks: decoding never panics; the codec is canonical (every value has exactly one
//! encoding), so a message that decodes re-encodes to the very same bytes, `encoded_len`
//! agrees, and the re-encoding decodes to an equal message. A refused message's
//! `ProtocolError` becomes an ERROR that itself always encodes and decodes (the server sends
//! it back before closing the connection).

use shoal::protocol::sync::{Message, MAX_ERROR_MESSAGE_BYTES};

/// Runs the checks on one input.
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    match Message::decode(data) {
        Ok(message) => {
            let bytes = message.encode();
            assert_eq!(bytes, data, "decode then encode changed the bytes");
            assert_eq!(message.encoded_len(), data.len(), "encoded_len disagrees");
            let again = Message::decode(&bytes).expect("a re-encoded message decodes");
            assert_eq!(again, message, "the re-encoded message decodes differently");
            // The accessors and Debug (used in logs) work on anything that decodes.
            let _ = (message.name(), message.session(), message.sender());
            let _ = format!("{message:?}");
        }
        Err(error) => {
            let reply = error.to_message();
            let bytes = reply.encode();
            let back = Message::decode(&bytes).expect("the ERROR answering a bad message decodes");
            assert_eq!(back, reply);
            if let Message::Error { message, .. } = &back {
                assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
            } else {
                panic!("ProtocolError::to_message is not an ERROR: {back:?}");
            }
            let _ = error.to_string();
        }
    }
}
