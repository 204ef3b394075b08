// Verifies DPoP proofs built by the Go code (dpop.Client) with jose, an
// independent implementation: the signature with the proof's own jwk
// (EmbeddedJWK), typ dpop+jwt, and jose's RFC 7638 thumbprint of that jwk.
//   stdin:   one JSON array of proofs
//   stdout:  one JSON array of {"jkt", "alg", "payload"} or {"error"}
import { jwtVerify, EmbeddedJWK, calculateJwkThumbprint } from "jose";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const proof of JSON.parse(input)) {
  try {
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: "dpop+jwt",
      algorithms: ["ES256", "ES384", "ES512", "PS256", "EdDSA"],
    });
    out.push({ jkt: await calculateJwkThumbprint(protectedHeader.jwk, "sha256"), alg: protectedHeader.alg, payload });
  } catch (e) {
    out.push({ error: String(e) });
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
