//! The one writer of every JSON document published or hashed: keys sorted, so the same
//! value gives the same bytes (and digest) in every run and from every program.

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use serde::Serialize;

use crate::Result;

/// Serialises with every object's keys sorted (serde_json's map is a BTreeMap), so that
/// types holding HashMaps (labels, annotations) give the same bytes in every run.
pub fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::to_vec(&value)?)
}

/// A document meant for people as well as machines (SBOM, provenance): the canonical
/// value, keys sorted, indented, with a trailing newline.
pub fn canonical_document(value: &impl Serialize) -> Result<String> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// An image index over `manifests`, as listed (the layout's `index.json`).
pub fn empty_index(manifests: Vec<Descriptor>) -> Result<ImageIndex> {
    Ok(ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?)
}

/// The multi-architecture image index over `members` (one image per platform), written the
/// same way into a layout and to a registry. The entries carry no annotations and are ordered by
/// platform (`os/architecture/variant`), so the same manifests give the same bytes whatever
/// order they were built or named in.
pub fn image_index(mut members: Vec<Descriptor>) -> Result<Vec<u8>> {
    for member in &mut members {
        member.set_annotations(None);
    }
    members.sort_by_key(platform_key);
    canonical_json(&empty_index(members)?)
}

/// `os/architecture/variant` of an index entry, for ordering.
fn platform_key(descriptor: &Descriptor) -> String {
    descriptor
        .platform()
        .as_ref()
        .map(|p| {
            format!(
                "{}/{}/{}",
                p.os(),
                p.architecture(),
                p.variant().as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{Arch, Digest, Os, PlatformBuilder};

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
        let pretty = canonical_document(&a).unwrap();
        assert!(
            pretty.starts_with("{\n  \"a\": 1,\n  \"b\": 1,"),
            "{pretty}"
        );
        assert!(pretty.ends_with("}\n"), "{pretty}");
    }

    #[test]
    fn an_image_index_is_the_same_bytes_whatever_the_order_and_annotations() {
        let member = |arch: &str, hex: char| {
            let mut d = Descriptor::new(
                MediaType::ImageManifest,
                42,
                Digest::try_from(format!("sha256:{}", hex.to_string().repeat(64))).unwrap(),
            );
            d.set_platform(Some(
                PlatformBuilder::default()
                    .os(Os::Linux)
                    .architecture(Arch::from(arch))
                    .build()
                    .unwrap(),
            ));
            d
        };
        let (amd, arm) = (member("amd64", 'a'), member("arm64", 'b'));
        let mut named = arm.clone();
        named.set_annotations(Some(
            [(
                "org.opencontainers.image.ref.name".to_owned(),
                "t".to_owned(),
            )]
            .into(),
        ));
        let one = image_index(vec![amd.clone(), arm.clone()]).unwrap();
        let two = image_index(vec![named, amd]).unwrap();
        assert_eq!(one, two);
        let text = String::from_utf8(one).unwrap();
        assert!(
            text.starts_with(r#"{"manifests":[{"digest":"sha256:aaaa"#),
            "keys sorted, amd64 first: {text}"
        );
        assert!(!text.contains("ref.name"), "{text}");
        assert!(
            text.ends_with(
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
            ),
            "{text}"
        );
    }
}
