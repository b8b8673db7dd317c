"""Verifies a DSSE envelope with securesystemslib (in-toto's own library), the PEM public key
`keygen` wrote being the only trust material.

Usage: verify-dsse.py ENVELOPE.json cosign.pub
Prints `verified: <predicateType>` and exits 0, or `refused: <reason>` and exits 1.
The key is named in the envelope by its hint: base64 of the SHA-256 of its DER
SubjectPublicKeyInfo, computed here from the PEM file, not read from the envelope.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main(envelope_path: str, key_path: str) -> int:
    with open(key_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = base64.b64encode(hashlib.sha256(der).digest()).decode()
    key = SSlibKey.from_crypto(public, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    try:
        envelope.verify([key], 1)
    except Exception as e:  # securesystemslib's VerificationError, or a malformed envelope
        print(f"refused: {type(e).__name__}: {e}")
        return 1
    if envelope.payload_type != "application/vnd.in-toto+json":
        print(f"refused: payload type {envelope.payload_type}")
        return 1
    statement = json.loads(envelope.payload)
    print(f"verified: {statement['predicateType']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
