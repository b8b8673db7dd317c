//! Checks by verifiers that are not ours: openssl (ECDSA signatures and key files),
//! python securesystemslib (DSSE envelopes), and an independent reading of cosign's encrypted
//! key format with python's hashlib.scrypt and PyNaCl (secretbox).
//!
//! Needs `openssl` and the PyPI packages `securesystemslib[crypto]==1.6.*` and
//! `pynacl==1.6.*`; a missing one fails the test and names the install.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tiny_sign::{
    Digest, Envelope, Error, IN_TOTO_PAYLOAD_TYPE, ImageSignature, KeyPair, PublicKey,
    SimpleSigning,
};
use xshell::{Shell, cmd};

const PYTHON_PACKAGES: &str = "pip install 'securesystemslib[crypto]==1.6.*' 'pynacl==1.6.*'";

fn shell() -> (Shell, tempfile::TempDir) {
    let sh = Shell::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    sh.change_dir(dir.path());
    (sh, dir)
}

/// Runs a command expected to fail with `code`; returns its stdout and stderr.
fn fails(command: xshell::Cmd<'_>, code: i32) -> String {
    let output = command.ignore_status().output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(code), "{text}");
    text
}

#[test]
fn openssl_verifies_a_simple_signing_signature() {
    let (sh, dir) = shell();
    let key = KeyPair::generate();
    let payload = SimpleSigning::new("localhost:5000/tiny-service", &Digest::of(b"manifest"));
    let signature = ImageSignature::sign(&key, &payload);
    sh.write_file("pub.pem", key.public_key().to_pem()).unwrap();
    sh.write_file("payload", signature.payload()).unwrap();
    let der = STANDARD.decode(signature.signature_base64()).unwrap();
    sh.write_file("sig.der", der).unwrap();

    let out = cmd!(
        sh,
        "openssl dgst -sha256 -verify pub.pem -signature sig.der payload"
    )
    .read()
    .unwrap();
    assert_eq!(out.trim(), "Verified OK");

    let mut tampered = signature.payload().to_vec();
    tampered[20] ^= 1;
    sh.write_file("tampered", tampered).unwrap();
    let out = fails(
        cmd!(
            sh,
            "openssl dgst -sha256 -verify pub.pem -signature sig.der tampered"
        ),
        1,
    );
    assert!(out.contains("Verification failure"), "{out}");

    sh.write_file("other.pem", KeyPair::generate().public_key().to_pem())
        .unwrap();
    let out = fails(
        cmd!(
            sh,
            "openssl dgst -sha256 -verify other.pem -signature sig.der payload"
        ),
        1,
    );
    assert!(out.contains("Verification failure"), "{out}");
    drop(dir);
}

#[test]
fn openssl_keys_are_read_and_openssl_signatures_verify() {
    let (sh, dir) = shell();
    // PKCS#8 "PRIVATE KEY" and SEC1 "EC PRIVATE KEY", as openssl writes them.
    cmd!(
        sh,
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out pkcs8.pem"
    )
    .run()
    .unwrap();
    cmd!(
        sh,
        "openssl ecparam -name prime256v1 -genkey -noout -out sec1.pem"
    )
    .run()
    .unwrap();
    for (file, label) in [("pkcs8.pem", "PRIVATE KEY"), ("sec1.pem", "EC PRIVATE KEY")] {
        let text = sh.read_file(file).unwrap();
        assert!(
            text.starts_with(&format!("-----BEGIN {label}-----")),
            "{text}"
        );
        let key = KeyPair::from_pem(text.as_bytes(), b"").unwrap();
        let public = cmd!(sh, "openssl pkey -in {file} -pubout").read().unwrap();
        assert_eq!(
            PublicKey::from_pem(public.as_bytes()).unwrap(),
            key.public_key()
        );
        assert_eq!(public.trim(), key.public_key().to_pem().trim());

        // openssl signs, we verify; a changed message fails.
        sh.write_file("message", b"signed by openssl").unwrap();
        cmd!(sh, "openssl dgst -sha256 -sign {file} -out sig.der message")
            .run()
            .unwrap();
        let sig = sh.read_binary_file("sig.der").unwrap();
        key.public_key().verify(b"signed by openssl", &sig).unwrap();
        assert!(matches!(
            key.public_key().verify(b"signed by openssl!", &sig),
            Err(Error::ForeignKey)
        ));
    }

    // Keys we do not sign with: one distinct error each.
    cmd!(
        sh,
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem"
    )
    .run()
    .unwrap();
    cmd!(
        sh,
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem"
    )
    .run()
    .unwrap();
    cmd!(sh, "openssl genpkey -algorithm ED25519 -out ed25519.pem")
        .run()
        .unwrap();
    cmd!(
        sh,
        "openssl ecparam -name secp384r1 -genkey -noout -out p384-sec1.pem"
    )
    .run()
    .unwrap();
    cmd!(sh, "openssl pkey -in p384.pem -pubout -out p384-pub.pem")
        .run()
        .unwrap();
    cmd!(sh, "openssl pkey -in pkcs8.pem -pubout -out pub.pem")
        .run()
        .unwrap();
    for (file, expected) in [
        ("rsa.pem", "RSA"),
        ("p384.pem", "ECDSA P-384"),
        ("ed25519.pem", "Ed25519"),
        ("p384-sec1.pem", "ECDSA P-384"),
    ] {
        let err = KeyPair::from_pem(sh.read_file(file).unwrap().as_bytes(), b"").unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedKey(k) if k == expected),
            "{file}: {err}"
        );
    }
    let err = PublicKey::from_pem(sh.read_file("p384-pub.pem").unwrap().as_bytes()).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedKey(k) if k == "ECDSA P-384"),
        "{err}"
    );
    assert!(matches!(
        KeyPair::from_pem(sh.read_file("pub.pem").unwrap().as_bytes(), b""),
        Err(Error::PublicKeyGiven)
    ));
    drop(dir);
}

const SSLIB_VERIFY: &str = r#"
import json, sys
try:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey
except ImportError as e:
    sys.exit(f"missing python package ({e}): " + sys.argv[4])
envelope_path, key_path, keyid = sys.argv[1:4]
with open(envelope_path) as f:
    envelope = Envelope.from_dict(json.load(f))
with open(key_path, "rb") as f:
    key = SSlibKey.from_crypto(load_pem_public_key(f.read()), keyid=keyid)
try:
    envelope.verify([key], 1)
except VerificationError as e:
    print(f"VerificationError: {e}")
    sys.exit(3)
print("verified", key.keytype, key.scheme)
"#;

#[test]
fn securesystemslib_verifies_a_dsse_envelope() {
    let (sh, dir) = shell();
    let key = KeyPair::generate();
    let keyid = key.public_key().hint();
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"tiny-service","digest":{"sha256":"4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement, &key, Some(&keyid));
    sh.write_file("envelope.json", envelope.to_json()).unwrap();
    sh.write_file("pub.pem", key.public_key().to_pem()).unwrap();

    let out = cmd!(
        sh,
        "python3 -c {SSLIB_VERIFY} envelope.json pub.pem {keyid} {PYTHON_PACKAGES}"
    )
    .read()
    .unwrap();
    assert_eq!(out.trim(), "verified ecdsa ecdsa-sha2-nistp256");

    // One byte of the statement changed: securesystemslib refuses it, and so do we.
    let mut tampered = envelope.clone();
    tampered.payload[statement.len() - 3] = b'[';
    sh.write_file("tampered.json", tampered.to_json()).unwrap();
    let out = fails(
        cmd!(
            sh,
            "python3 -c {SSLIB_VERIFY} tampered.json pub.pem {keyid} {PYTHON_PACKAGES}"
        ),
        3,
    );
    assert!(out.contains("VerificationError"), "{out}");
    assert!(matches!(
        tampered.verify(&key.public_key(), Some(&keyid)),
        Err(Error::TamperedPayload)
    ));

    // Another key: refused.
    sh.write_file("other.pem", KeyPair::generate().public_key().to_pem())
        .unwrap();
    let out = fails(
        cmd!(
            sh,
            "python3 -c {SSLIB_VERIFY} envelope.json other.pem {keyid} {PYTHON_PACKAGES}"
        ),
        3,
    );
    assert!(out.contains("VerificationError"), "{out}");
    drop(dir);
}

/// cosign's key format read and written by a second implementation: python's hashlib.scrypt
/// and PyNaCl's SecretBox (libsodium), following go-securesystemslib's `encrypted` format.
const SECRETBOX_KEYS: &str = r#"
import base64, hashlib, json, os, sys
try:
    import nacl.secret
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError as e:
    sys.exit(f"missing python package ({e}): " + sys.argv[4])
mode, path, password = sys.argv[1], sys.argv[2], sys.argv[3].encode()

def public_pem(private):
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

if mode == "decrypt":
    with open(path) as f:
        lines = f.read().strip().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----", lines[0]
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----", lines[-1]
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    kdf, cipher = doc["kdf"], doc["cipher"]
    assert kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox", doc
    params = kdf["params"]
    key = hashlib.scrypt(password, salt=base64.b64decode(kdf["salt"]), n=params["N"],
                         r=params["r"], p=params["p"], maxmem=64 << 20, dklen=32)
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                             base64.b64decode(cipher["nonce"]))
    sys.stdout.write(public_pem(serialization.load_der_private_key(der, password=None)))
    print("N=%d r=%d p=%d" % (params["N"], params["r"], params["p"]))
elif mode == "encrypt":
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    key = hashlib.scrypt(password, salt=salt, n=32768, r=8, p=1, maxmem=64 << 20, dklen=32)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    b64 = lambda b: base64.b64encode(b).decode()
    doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(sealed)}
    body = b64(json.dumps(doc, separators=(",", ":")).encode())
    with open(path, "w") as f:
        f.write("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
        f.write("".join(body[i:i + 64] + "\n" for i in range(0, len(body), 64)))
        f.write("-----END ENCRYPTED COSIGN PRIVATE KEY-----\n")
    sys.stdout.write(public_pem(private))
"#;

#[test]
fn encrypted_keys_agree_with_an_independent_implementation() {
    let (sh, dir) = shell();
    // Ours, opened by python.
    let key = KeyPair::generate();
    sh.write_file("cosign.key", key.to_encrypted_pem(b"s3cret pass"))
        .unwrap();
    let out = cmd!(
        sh,
        "python3 -c {SECRETBOX_KEYS} decrypt cosign.key 's3cret pass' {PYTHON_PACKAGES}"
    )
    .read()
    .unwrap();
    let (public, params) = out.rsplit_once("-----END PUBLIC KEY-----\n").unwrap();
    assert_eq!(
        PublicKey::from_pem(format!("{public}-----END PUBLIC KEY-----\n").as_bytes()).unwrap(),
        key.public_key()
    );
    assert_eq!(params.trim(), "N=32768 r=8 p=1");
    let out = fails(
        cmd!(
            sh,
            "python3 -c {SECRETBOX_KEYS} decrypt cosign.key wrong {PYTHON_PACKAGES}"
        ),
        1,
    );
    assert!(out.contains("CryptoError"), "{out}");

    // Python's, in the older PEM type, opened by us.
    let public = cmd!(
        sh,
        "python3 -c {SECRETBOX_KEYS} encrypt old.key 'other pass' {PYTHON_PACKAGES}"
    )
    .read()
    .unwrap();
    let pem = sh.read_file("old.key").unwrap();
    let loaded = KeyPair::from_pem(pem.as_bytes(), b"other pass").unwrap();
    assert_eq!(
        loaded.public_key(),
        PublicKey::from_pem(public.as_bytes()).unwrap()
    );
    assert!(matches!(
        KeyPair::from_pem(pem.as_bytes(), b"s3cret pass"),
        Err(Error::WrongPassword)
    ));
    assert!(Path::new(&dir.path().join("old.key")).exists());
    drop(dir);
}
