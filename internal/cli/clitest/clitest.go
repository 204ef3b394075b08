// Package clitest holds the checks that every command's tests make of its
// command line, so that the commands cannot drift apart in them.
package clitest

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// Help checks a command's --help output against the golden file (written
// first when update is set, for `go test -update`) and against the
// configuration struct T: every variable of T must have a help tag and be
// printed with its default, so that --help cannot leave one out.
func Help[T any](t testing.TB, help []byte, golden string, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(golden, help, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(help, want) {
		t.Errorf("--help differs from %s (run go test -update):\n%s", golden, help)
	}
	for _, f := range cli.Fields[T]() {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Tag.Get("help") == "" {
			t.Errorf("%s has no help tag", name)
		}
		if !bytes.Contains(help, []byte("  "+name+"  default: ")) {
			t.Errorf("--help lacks %s", name)
		}
	}
}
