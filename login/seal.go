package login

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// MinKeyBytes is the least key material one line of the cookie key file
// may hold.
const MinKeyBytes = 32

// sealVersion is the first byte of every sealed value, so that a later
// format can be told apart from this one.
const sealVersion = 1

// keyInfo separates the keys this package derives from any other use of
// the same key material (RFC 5869 §3.2).
const keyInfo = "jwt-sidecar login cookie v1"

var (
	// errUnsealed is every reason a sealed value does not open: not
	// base64url, wrong version, too short, sealed by no key we hold,
	// tampered with, or bound to another cookie. The reasons are not told
	// apart on purpose: an attacker learns nothing from the answer.
	errUnsealed = errors.New("the cookie does not open with any cookie key")
)

// sealer encrypts and authenticates cookie values with AES-256-GCM. The
// first key seals; every key opens, so keys rotate without logging anyone
// out: add the new key first, keep the old one until the longest session
// sealed with it has ended, then remove it.
type sealer struct {
	aeads []cipher.AEAD
}

// readKeys reads the cookie key file: one key per line, blank lines and
// lines starting with # ignored, each at least MinKeyBytes bytes (e.g. the
// output of `openssl rand -base64 48`). The line's bytes are key material,
// not an encoding of it: the AES key is derived with HKDF-SHA256, so any
// line of enough entropy serves and nothing is guessed about its format.
func readKeys(path string) (*sealer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < MinKeyBytes {
			return nil, fmt.Errorf("line %d: a key needs at least %d bytes, this one has %d", n, MinKeyBytes, len(line))
		}
		lines = append(lines, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return newSealer(lines...)
}

// newSealer derives one AES-256-GCM key from each secret; the first seals.
func newSealer(secrets ...[]byte) (*sealer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no cookie key")
	}
	s := &sealer{}
	for i, secret := range secrets {
		if len(secret) < MinKeyBytes {
			return nil, fmt.Errorf("key %d: needs at least %d bytes, has %d", i+1, MinKeyBytes, len(secret))
		}
		key, err := hkdf.Key(sha256.New, secret, nil, keyInfo, 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// seal encrypts plain with the first key. aad binds the value to one
// cookie (its purpose and name), so a value cut from one cookie never
// opens as another. The result is base64url without padding: version,
// random 96-bit nonce, ciphertext and tag.
func (s *sealer) seal(plain []byte, aad string) string {
	aead := s.aeads[0]
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	// A random nonce is safe for far more values than a session key seals
	// (NIST SP 800-38D §8.3: 2^32 with one key).
	rand.Read(out[1:])
	out = aead.Seal(out, out[1:], plain, []byte(aad))
	return base64.RawURLEncoding.EncodeToString(out)
}

// open decrypts a value sealed by any key. rotated is true when a key
// other than the first opened it, so the caller can re-seal it with the
// current key.
func (s *sealer) open(value, aad string) (plain []byte, rotated bool, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, false, errUnsealed
	}
	for i, aead := range s.aeads {
		ns := aead.NonceSize()
		if len(raw) < 1+ns+aead.Overhead() || raw[0] != sealVersion {
			return nil, false, errUnsealed
		}
		plain, err := aead.Open(nil, raw[1:1+ns], raw[1+ns:], []byte(aad))
		if err == nil {
			return plain, i > 0, nil
		}
	}
	return nil, false, errUnsealed
}
