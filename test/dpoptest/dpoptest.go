// Package dpoptest builds DPoP proofs with node's jose (npm), an
// implementation independent of the Go code under test, for the dpop
// package's tests and the proxy's. Nothing is downloaded at test time:
// .ci/run installs the locked module with npm ci.
package dpoptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Keys is the first line of proofs.mjs: the thumbprints jose computed for
// its keys (JKT for the ES256 key, Algs for one key per extra alg).
type Keys struct {
	JKT  string            `json:"jkt"`
	Algs map[string]string `json:"algs"`
}

// Proofs is its second line: one proof per case, and one per extra alg.
type Proofs struct {
	Cases map[string]string `json:"cases"`
	Algs  map[string]string `json:"algs"`
}

// Jose runs dpop/testdata/node/proofs.mjs, which builds keys and proofs with jose (npm),
// an implementation independent of this package: it reads the keys'
// thumbprints, asks token for the access token bound to them and returns
// the proofs for it. It skips when node or the installed module is absent,
// except under CI=true, where .ci/run installed both (`npm ci --prefix
// dpop/testdata/node`). Nothing is downloaded at test time.
func Jose(t testing.TB, input map[string]any, token func(Keys) string) (Keys, Proofs) {
	t.Helper()
	node, dir := setup(t)
	arg, _ := json.Marshal(input)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "proofs.mjs", string(arg))
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	var keys Keys
	var proofs Proofs
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &keys) != nil || keys.JKT == "" {
		t.Fatalf("node proofs.mjs: no keys line: %s", stderr.String())
	}
	line, _ := json.Marshal(map[string]string{"access_token": token(keys)})
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &proofs) != nil {
		t.Fatalf("node proofs.mjs: no proofs line: %s", stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node proofs.mjs: %v\n%s", err, stderr.String())
	}
	return keys, proofs
}

// setup finds node and the installed jose module; it skips without them,
// except under CI=true, where .ci/run installed both (`npm ci --prefix
// dpop/testdata/node`).
func setup(t testing.TB) (node, dir string) {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI must run: npm ci --prefix dpop/testdata/node", why)
		}
		t.Skipf("%s; run `npm ci --prefix dpop/testdata/node` to test against jose", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node is not installed")
	}
	_, here, _, _ := runtime.Caller(0)
	dir = filepath.Join(filepath.Dir(here), "..", "..", "dpop", "testdata", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose", "package.json")); err != nil {
		unavailable("the jose module is not installed")
	}
	return node, dir
}

// Verified is what jose found in one proof: its thumbprint of the proof's
// jwk, the alg and the payload; Error when it refused the proof.
type Verified struct {
	JKT     string         `json:"jkt"`
	Alg     string         `json:"alg"`
	Payload map[string]any `json:"payload"`
	Error   string         `json:"error"`
}

// JoseVerify verifies proofs with jose (dpop/testdata/node/verify.mjs):
// the signature with the embedded jwk and typ dpop+jwt. It skips as Jose
// does.
func JoseVerify(t testing.TB, proofs []string) []Verified {
	t.Helper()
	node, dir := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verify.mjs")
	cmd.Dir = dir
	in, _ := json.Marshal(proofs)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.String())
	}
	var v []Verified
	if err := json.Unmarshal(out, &v); err != nil || len(v) != len(proofs) {
		t.Fatalf("node verify.mjs: %d answers for %d proofs (%v): %s", len(v), len(proofs), err, out)
	}
	return v
}
