package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// maxJWKSFile bounds what CheckJWKSFile reads: far above any real key set.
const maxJWKSFile = 16 << 20

// CheckJWKSFile reads a JWKS_FILE (or a provider's jwks_file) and says, in
// an operator's words, why it is not a key set the sidecar can use: not
// JSON, a PEM file, a single JWK instead of a set, no "keys" array, or no
// usable signing key. Start and check-config call it, so the mistake
// stops the start (exit 2) instead of leaving a sidecar that is never
// ready.
func CheckJWKSFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxJWKSFile+1))
	if err != nil {
		return err
	}
	if len(raw) > maxJWKSFile {
		return fmt.Errorf("%s: larger than %d bytes: not a key set", path, maxJWKSFile)
	}
	return checkJWKS(path, bytes.TrimSpace(raw))
}

func checkJWKS(path string, raw []byte) error {
	switch {
	case len(raw) == 0:
		return fmt.Errorf("%s is empty: want a JWK Set, {\"keys\": [...]}", path)
	case bytes.HasPrefix(raw, []byte("-----BEGIN")):
		return fmt.Errorf("%s is a PEM file, not a JWK Set: name PEM public keys in PUBLIC_KEY_FILES (public_key_files), or convert them to {\"keys\": [...]}", path)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s is not a JSON object, so not a JWK Set ({\"keys\": [...]})", path)
	}
	ks, ok := doc["keys"]
	if !ok {
		if _, one := doc["kty"]; one {
			return fmt.Errorf("%s is a single JWK, not a JWK Set: wrap it as {\"keys\": [ ... ]}", path)
		}
		return fmt.Errorf("%s has no \"keys\" array: not a JWK Set ({\"keys\": [...]})", path)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(ks, &list); err != nil {
		return fmt.Errorf("%s: \"keys\" is not an array: not a JWK Set", path)
	}
	log := slog.New(slog.DiscardHandler)
	jwks, err := parseJWKS(raw, log, path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := newKeySet(jwks, log, path); err != nil {
		if errors.Is(err, errNoUsableKey) {
			return fmt.Errorf("%s holds %d keys, none usable to verify signatures (an RSA key under 2048 bits, an encryption key, an unknown kty or a key that does not parse)", path, len(list))
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
