//! The MD5 digests SQS returns and SDKs verify: of the body, and of message (or system) attributes.
//!
//! The attribute digest follows AWS's documented encoding: attributes sorted by name, and for each
//! one the name, the data type and the value, each prefixed by its length as a 4-byte big-endian
//! integer, with a one-byte transport type (1 for String and Number, 2 for Binary) before the value.

use md5::{Digest, Md5};
use std::collections::BTreeMap;

use crate::message::AttributeValue;

/// The hex MD5 of a message body's UTF-8 bytes.
pub fn md5_of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// The hex MD5 of a set of message attributes, or `None` when there are none (AWS omits it).
pub fn md5_of_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut hasher = Md5::new();
    // BTreeMap iterates in byte order of the names, which is the order AWS sorts them in.
    for (name, value) in attributes {
        update_length_prefixed(&mut hasher, name.as_bytes());
        update_length_prefixed(&mut hasher, value.data_type.as_bytes());
        match &value.binary_value {
            Some(bytes) => {
                hasher.update([2u8]);
                update_length_prefixed(&mut hasher, bytes);
            }
            None => {
                hasher.update([1u8]);
                let text = value.string_value.as_deref().unwrap_or_default();
                update_length_prefixed(&mut hasher, text.as_bytes());
            }
        }
    }
    Some(hex::encode(hasher.finalize()))
}

fn update_length_prefixed(hasher: &mut Md5, bytes: &[u8]) {
    // Attribute names, types and values are bounded far below 4 GiB by validation.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    hasher.update(len.to_be_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest_is_plain_md5_hex() {
        assert_eq!(md5_of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(md5_of_body(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn no_attributes_means_no_digest() {
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }

    #[test]
    fn attribute_digest_matches_the_documented_encoding() {
        let mut attributes = BTreeMap::new();
        attributes.insert("b".to_owned(), AttributeValue::string("String", "x"));
        attributes.insert(
            "a".to_owned(),
            AttributeValue {
                data_type: "Binary".to_owned(),
                string_value: None,
                binary_value: Some(vec![1, 2]),
            },
        );
        let mut expected = Vec::new();
        for (name, kind, transport, value) in [
            ("a", "Binary", 2u8, &[1u8, 2][..]),
            ("b", "String", 1u8, &b"x"[..]),
        ] {
            expected.extend((name.len() as u32).to_be_bytes());
            expected.extend(name.as_bytes());
            expected.extend((kind.len() as u32).to_be_bytes());
            expected.extend(kind.as_bytes());
            expected.push(transport);
            expected.extend((value.len() as u32).to_be_bytes());
            expected.extend(value);
        }
        assert_eq!(
            md5_of_attributes(&attributes),
            Some(hex::encode(Md5::digest(&expected)))
        );
    }
}
