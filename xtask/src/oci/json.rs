//! The JSON every OCI document here is written as: keys sorted, so the same value gives the
//! same bytes (and digest) in every run. A leaf: the layout, the referrers and the
//! assembler all write through it.

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use serde::Serialize;

/// Serialises with every object's keys sorted (serde_json's map is a BTreeMap), so that
/// types holding HashMaps (labels, annotations) give the same bytes in every run.
pub fn canonical_json(value: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::to_vec(&value)?)
}

/// An image index over `manifests`.
pub fn empty_index(manifests: Vec<Descriptor>) -> anyhow::Result<ImageIndex> {
    Ok(ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_canonical_whatever_the_map_order() {
        let mut a = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b", "y", "c"] {
            a.insert(k, 1);
        }
        assert_eq!(
            String::from_utf8(canonical_json(&a).unwrap()).unwrap(),
            r#"{"a":1,"b":1,"c":1,"m":1,"y":1,"z":1}"#
        );
    }
}
