// node verify-bundle.js <host:port> <repository> <tag or digest> <public key PEM file>
//
// Checks, with sigstore's JavaScript verifier (@sigstore/verify, @sigstore/bundle) and the
// public key as its only trust material, that the image at the reference in a plain-HTTP
// registry has a sigstore bundle referrer signed with the key whose in-toto statement names
// the image's manifest digest. Bundle referrers are found as cosign 3 finds them: the
// referrers API, else the `sha256-<hex>` fallback tag. Prints `verified: ...` and exits 0,
// or `refused: ...` and exits 1.
//
// Needs NODE_PATH to hold the node_modules of `npm install @sigstore/verify` (see .ci/provision).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const MANIFESTS = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

async function get(url, accept) {
  const response = await fetch(url, { headers: accept ? { Accept: accept } : {} });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

async function main() {
  const [host, repository, reference, keyPath] = process.argv.slice(2);
  if (!keyPath) throw new Error('usage: verify-bundle.js <host:port> <repository> <reference> <public key>');
  const base = `http://${host}/v2/${repository}`;
  const manifest = await get(`${base}/manifests/${reference}`, MANIFESTS);
  if (!manifest) throw new Error(`${repository}:${reference} not found`);
  const hex = crypto.createHash('sha256').update(manifest).digest('hex');

  let listed = await get(`${base}/referrers/sha256:${hex}`, 'application/vnd.oci.image.index.v1+json');
  if (!listed) listed = await get(`${base}/manifests/sha256-${hex}`, 'application/vnd.oci.image.index.v1+json');
  const entries = listed ? JSON.parse(listed).manifests || [] : [];
  const bundles = entries.filter((e) => e.artifactType === BUNDLE);
  if (bundles.length === 0) throw new Error(`no sigstore bundle referrers of sha256:${hex}`);

  const key = crypto.createPublicKey(fs.readFileSync(keyPath));
  // The key is the only trust material: no Fulcio CA, no Rekor log, no timestamp authority.
  const trust = toTrustMaterial(
    { mediaType: '', certificateAuthorities: [], tlogs: [], ctlogs: [], timestampAuthorities: [] },
    () => ({ publicKey: key, validFor: () => true }),
  );
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });

  const failures = [];
  for (const entry of bundles) {
    try {
      const referrer = JSON.parse(await get(`${base}/manifests/${entry.digest}`, MANIFESTS));
      const layer = referrer.layers.find((l) => l.mediaType === BUNDLE);
      const bundle = bundleFromJSON(JSON.parse(await get(`${base}/blobs/${layer.digest}`)));
      verifier.verify(toSignedEntity(bundle));
      // The signature holds: the statement it covers must name this manifest.
      const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
      const subjects = (statement.subject || []).map((s) => s.digest && s.digest.sha256);
      if (!subjects.includes(hex)) {
        throw new Error(`the signed statement names ${subjects.join(', ')}, not ${hex}`);
      }
      console.log(`verified: bundle ${entry.digest} signs sha256:${hex}`);
      return;
    } catch (e) {
      failures.push(`${entry.digest}: ${e.message}`);
    }
  }
  throw new Error(failures.join('; '));
}

main().catch((e) => {
  console.log(`refused: ${e.message}`);
  process.exit(1);
});
