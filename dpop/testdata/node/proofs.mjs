// Builds DPoP proofs (RFC 9449) with jose, an implementation independent of
// the Go code under test. A two-line conversation, since the access token
// must name the key (cnf.jkt) and the proof must hash the token (ath):
//   argument:  {"htm": "GET", "htu": "http://127.0.0.1:PORT/path?q", "now": 1767225600, "nonce": "optional"}
//   stdout 1:  {"jkt": "...", "algs": {"ES384": "jkt", ...}}   (jose's RFC 7638 thumbprints)
//   stdin:     {"access_token": "..."}   (one line)
//   stdout 2:  {"cases": {"valid": "proof", ...}, "algs": {"ES384": "proof", ...}}
// Nothing is fetched: jose is a local dependency installed by `npm ci`.
import { SignJWT, generateKeyPair, exportJWK, calculateJwkThumbprint, base64url } from "jose";
import { createHash, randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

const input = JSON.parse(process.argv[2]);
const sha256 = (s) => base64url.encode(createHash("sha256").update(s).digest());

async function keyFor(alg) {
  const opts = alg === "PS256" ? { modulusLength: 2048, extractable: true } : { extractable: true };
  const { publicKey, privateKey } = await generateKeyPair(alg, opts);
  const jwk = await exportJWK(publicKey);
  return { alg, jwk, privateKey, jkt: await calculateJwkThumbprint(jwk, "sha256") };
}

const main = await keyFor("ES256");
const other = await keyFor("ES256");
const extra = {};
for (const alg of ["ES384", "PS256", "EdDSA"]) extra[alg] = await keyFor(alg);
process.stdout.write(JSON.stringify({
  jkt: main.jkt,
  algs: Object.fromEntries(Object.entries(extra).map(([a, k]) => [a, k.jkt])),
}) + "\n");

const rl = createInterface({ input: process.stdin });
const line = await new Promise((resolve) => rl.once("line", resolve));
rl.close();
const ath = sha256(JSON.parse(line).access_token);

async function proof(key, claims = {}, { iat = input.now, header = {} } = {}) {
  const payload = { htm: input.htm, htu: input.htu, ath, ...claims };
  if (input.nonce && !("nonce" in claims)) payload.nonce = input.nonce;
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, typ: "dpop+jwt", jwk: key.jwk, ...header })
    .setIssuedAt(iat)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

const url = new URL(input.htu);
const cases = {
  valid: await proof(main),
  wrong_method: await proof(main, { htm: input.htm === "GET" ? "POST" : "GET" }),
  wrong_url: await proof(main, { htu: `${url.protocol}//${url.host}/elsewhere` }),
  stale: await proof(main, {}, { iat: input.now - 3600 }),
  future: await proof(main, {}, { iat: input.now + 3600 }),
  wrong_key: await proof(other),
  wrong_ath: await proof(main, { ath: sha256("another token") }),
  no_ath: await proof(main, { ath: undefined }),
  wrong_typ: await proof(main, {}, { header: { typ: "JWT" } }),
  no_nonce: await proof(main, { nonce: undefined }),
  // The same target written differently: upper-case scheme and host, the
  // default port, query and fragment; RFC 9449 §4.3 normalization.
  normalized: await proof(main, { htu: `${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}?other=1#frag` }),
};
const algs = {};
for (const [a, k] of Object.entries(extra)) algs[a] = await proof(k);
process.stdout.write(JSON.stringify({ cases, algs }) + "\n");
