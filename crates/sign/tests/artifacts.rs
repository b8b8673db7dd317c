//! The public API end to end, without external tools: keys, the `.sig` image, bundles and
//! their failure modes.

use std::os::unix::fs::PermissionsExt as _;

use tiny_sign::{
    BUNDLE_MEDIA_TYPE, Bundle, COSIGN_SIGN_PREDICATE_TYPE, Descriptor, Digest, Error,
    ImageSignature, KeyPair, OCI_MANIFEST_MEDIA_TYPE, PublicKey, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureImage, SimpleSigning, check_private_key_permissions,
    signature_tag,
};

fn image() -> Digest {
    Digest::of(b"{\"schemaVersion\":2}")
}

#[test]
fn encrypted_key_round_trip_and_its_errors() {
    let key = KeyPair::generate();
    let pem = key.to_encrypted_pem(b"pw");
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let loaded = KeyPair::from_pem(pem.as_bytes(), b"pw").unwrap();
    assert_eq!(loaded.public_key(), key.public_key());
    // The old PEM type reads the same.
    let old = pem.replace("SIGSTORE", "COSIGN");
    assert_eq!(
        KeyPair::from_pem(old.as_bytes(), b"pw")
            .unwrap()
            .public_key(),
        key.public_key()
    );

    assert!(matches!(
        KeyPair::from_pem(pem.as_bytes(), b"wrong"),
        Err(Error::WrongPassword)
    ));
    let public = key.public_key().to_pem();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(matches!(
        KeyPair::from_pem(public.as_bytes(), b"pw"),
        Err(Error::PublicKeyGiven)
    ));
    assert!(matches!(
        PublicKey::from_pem(pem.as_bytes()),
        Err(Error::PrivateKeyGiven)
    ));
    assert_eq!(
        PublicKey::from_pem(public.as_bytes()).unwrap(),
        key.public_key()
    );
    for garbage in [
        &b"not a key"[..],
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    ] {
        let err = KeyPair::from_pem(garbage, b"pw").unwrap_err();
        assert!(matches!(err, Error::MalformedPem(_)), "{err}");
    }
    assert!(matches!(
        KeyPair::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b""
        ),
        Err(Error::UnsupportedKey(_))
    ));
    // Text before the block is skipped, as Go's PEM reader does.
    let commented = format!("# cosign.pub\n{public}");
    assert_eq!(
        PublicKey::from_pem(commented.as_bytes()).unwrap(),
        key.public_key()
    );
}

#[test]
fn key_file_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosign.key");
    std::fs::write(&path, "x").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    check_private_key_permissions(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = check_private_key_permissions(&path).unwrap_err();
        assert!(
            matches!(err, Error::KeyReadableByOthers { mode: m, .. } if m == mode),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    assert!(matches!(
        check_private_key_permissions(&dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn sig_image_shape_matches_cosign() {
    let key = KeyPair::generate();
    let signature = ImageSignature::sign(&key, &SimpleSigning::new("localhost:5000/app", &image()));
    let mut sigs = SignatureImage::new();
    assert!(sigs.add(&signature, &key.public_key()));
    assert_eq!(
        signature_tag(&image()),
        format!("sha256-{}.sig", image().hex())
    );

    let manifest: serde_json::Value = serde_json::from_slice(&sigs.manifest().to_bytes()).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], SIMPLE_SIGNING_MEDIA_TYPE);
    assert_eq!(layer["digest"], Digest::of(signature.payload()).as_str());
    assert_eq!(layer["size"], signature.payload().len());
    assert_eq!(
        layer["annotations"][SIGNATURE_ANNOTATION],
        signature.signature_base64()
    );
    let config = String::from_utf8(sigs.config().data).unwrap();
    assert_eq!(
        config,
        format!(
            r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
            Digest::of(signature.payload())
        )
    );
    assert_eq!(
        manifest["config"]["digest"],
        sigs.config().digest().as_str()
    );
}

#[test]
fn merging_keeps_other_keys_and_skips_repeats() {
    let ours = KeyPair::generate();
    let theirs = KeyPair::generate();
    let payload = SimpleSigning::new("localhost:5000/app", &image());
    let mut sigs = SignatureImage::new();
    assert!(sigs.add(
        &ImageSignature::sign(&theirs, &payload),
        &theirs.public_key()
    ));
    // Pulled back from the registry, then signed by us twice.
    let mut pulled = SignatureImage::from_manifest(&sigs.manifest().to_bytes()).unwrap();
    assert!(pulled.add(&ImageSignature::sign(&ours, &payload), &ours.public_key()));
    let again = SignatureImage::from_manifest(&pulled.manifest().to_bytes()).unwrap();
    let mut again2 = again.clone();
    assert!(!again2.add(&ImageSignature::sign(&ours, &payload), &ours.public_key()));
    assert_eq!(again2, again);
    assert_eq!(again.layers().len(), 2);
    // Both keys verify against the merged image.
    let payloads = vec![payload.to_bytes(); 2];
    again
        .verify(&ours.public_key(), &image(), &payloads)
        .unwrap();
    again
        .verify(&theirs.public_key(), &image(), &payloads)
        .unwrap();
}

#[test]
fn sig_image_failures_are_told_apart() {
    let ours = KeyPair::generate();
    let theirs = KeyPair::generate();
    let payload = SimpleSigning::new("localhost:5000/app", &image());

    assert!(matches!(
        SignatureImage::new().verify(&ours.public_key(), &image(), &[]),
        Err(Error::Unsigned)
    ));

    let mut foreign = SignatureImage::new();
    foreign.add(
        &ImageSignature::sign(&theirs, &payload),
        &theirs.public_key(),
    );
    assert!(matches!(
        foreign.verify(&ours.public_key(), &image(), &[payload.to_bytes()]),
        Err(Error::ForeignKey)
    ));

    let mut signed = SignatureImage::new();
    signed.add(&ImageSignature::sign(&ours, &payload), &ours.public_key());
    let mut tampered = payload.to_bytes();
    tampered[10] ^= 1;
    assert!(matches!(
        signed.verify(&ours.public_key(), &image(), &[tampered]),
        Err(Error::TamperedPayload)
    ));

    // The manifest was replaced after signing: the signature is valid, for another digest.
    let replaced = Digest::of(b"another manifest");
    let err = signed
        .verify(&ours.public_key(), &replaced, &[payload.to_bytes()])
        .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, signed } if *expected == replaced && *signed == image()),
        "{err}"
    );

    // A re-pushed layer whose payload names another digest but keeps the old signature.
    let mut forged = SignatureImage::new();
    let other_payload = SimpleSigning::new("localhost:5000/app", &replaced);
    let mut layer = ImageSignature::sign(&ours, &other_payload).descriptor();
    layer.annotations.insert(
        SIGNATURE_ANNOTATION.to_owned(),
        ImageSignature::sign(&ours, &payload)
            .signature_base64()
            .to_owned(),
    );
    let manifest = {
        let mut m = forged.manifest();
        m.layers.push(layer);
        m
    };
    forged = SignatureImage::from_manifest(&manifest.to_bytes()).unwrap();
    assert!(matches!(
        forged.verify(&ours.public_key(), &replaced, &[other_payload.to_bytes()]),
        Err(Error::ForeignKey)
    ));
}

#[test]
fn bundle_and_referrer() {
    let key = KeyPair::generate();
    let bundle = Bundle::sign_image(&key, &image());
    let json: serde_json::Value = serde_json::from_slice(&bundle.to_json()).unwrap();
    assert_eq!(json["mediaType"], BUNDLE_MEDIA_TYPE);
    assert_eq!(
        json["verificationMaterial"]["publicKey"]["hint"],
        key.public_key().hint()
    );
    assert_eq!(
        json["verificationMaterial"]["tlogEntries"],
        serde_json::json!([])
    );
    assert_eq!(
        json["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    assert!(json["dsseEnvelope"]["signatures"][0].get("keyid").is_none());
    let statement: serde_json::Value = serde_json::from_slice(&bundle.envelope.payload).unwrap();
    assert_eq!(
        statement,
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": image().hex()}}],
            "predicateType": COSIGN_SIGN_PREDICATE_TYPE,
            "predicate": {}
        })
    );

    let parsed = Bundle::from_json(&bundle.to_json()).unwrap();
    assert_eq!(parsed, bundle);
    parsed.verify_image(&key.public_key(), &image()).unwrap();
    assert!(matches!(
        parsed.verify_image(&KeyPair::generate().public_key(), &image()),
        Err(Error::ForeignKey)
    ));
    assert!(matches!(
        parsed.verify_image(&key.public_key(), &Digest::of(b"x")),
        Err(Error::DigestMismatch { .. })
    ));
    let mut tampered = parsed.clone();
    let text = String::from_utf8(tampered.envelope.payload).unwrap();
    tampered.envelope.payload = text
        .replace(image().hex(), Digest::of(b"x").hex())
        .into_bytes();
    assert!(matches!(
        tampered.verify_image(&key.public_key(), &Digest::of(b"x")),
        Err(Error::TamperedPayload)
    ));

    let subject = Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, b"{\"schemaVersion\":2}");
    let referrer = bundle.referrer(&subject, "2024-01-01T00:00:00Z").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&referrer.manifest.to_bytes()).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "size": 2,
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "artifactType": BUNDLE_MEDIA_TYPE
            },
            "layers": [{
                "mediaType": BUNDLE_MEDIA_TYPE,
                "size": bundle.to_json().len(),
                "digest": Digest::of(&bundle.to_json()).as_str()
            }],
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE_TYPE,
                "org.opencontainers.image.created": "2024-01-01T00:00:00Z"
            },
            "subject": {
                "mediaType": OCI_MANIFEST_MEDIA_TYPE,
                "size": subject.size,
                "digest": subject.digest.as_str()
            },
            "artifactType": BUNDLE_MEDIA_TYPE
        })
    );
    assert_eq!(referrer.blobs.len(), 2);
    assert_eq!(referrer.blobs[0].data, b"{}");
    assert_eq!(referrer.blobs[1].data, bundle.to_json());
}

#[test]
fn signing_is_deterministic() {
    let key = KeyPair::generate();
    let payload = SimpleSigning::new("r.example/app", &image());
    assert_eq!(
        ImageSignature::sign(&key, &payload),
        ImageSignature::sign(&key, &payload)
    );
}
