package clitest_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli/clitest"
)

type config struct {
	Addr    string        `env:"ADDR,required" help:"where to listen"`
	Timeout time.Duration `env:"TIMEOUT" envDefault:"5s" help:"how long to wait"`
}

type undocumented struct {
	Addr string `env:"ADDR,required" help:"where to listen"`
	Size int    `env:"SIZE"`
}

// recorder keeps what Help reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func help[T any]() []byte {
	var b bytes.Buffer
	b.WriteString("usage: x\n\n")
	cli.PrintVars[T](&b)
	return b.Bytes()
}

func TestHelp(t *testing.T) {
	dir := t.TempDir()
	golden := filepath.Join(dir, "help.golden")
	good := help[config]()
	tests := []struct {
		name     string
		check    func(tb testing.TB)
		wantErrs []string // each a prefix of one report, in order
	}{
		{name: "update writes the golden file", check: func(tb testing.TB) { clitest.Help[config](tb, good, golden, true) }},
		{name: "matches", check: func(tb testing.TB) { clitest.Help[config](tb, good, golden, false) }},
		{name: "differs", check: func(tb testing.TB) { clitest.Help[config](tb, append(good, "more\n"...), golden, false) },
			wantErrs: []string{"--help differs from " + golden + " (run go test -update)"}},
		{name: "a variable left out", check: func(tb testing.TB) {
			short := []byte(strings.Replace(string(good), "  TIMEOUT  default: 5s\n", "", 1))
			clitest.Help[config](tb, short, golden, false)
		}, wantErrs: []string{"--help differs", "--help lacks TIMEOUT"}},
		{name: "a variable without help", check: func(tb testing.TB) {
			h := help[undocumented]()
			clitest.Help[undocumented](tb, h, golden, true)
		}, wantErrs: []string{"SIZE has no help tag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tt.check(r)
			if len(r.errs) != len(tt.wantErrs) {
				t.Fatalf("reports = %q, want %d starting %q", r.errs, len(tt.wantErrs), tt.wantErrs)
			}
			for i, w := range tt.wantErrs {
				if !strings.HasPrefix(r.errs[i], w) {
					t.Errorf("report %d = %q, want it to start %q", i, r.errs[i], w)
				}
			}
		})
	}
	if b, err := os.ReadFile(golden); err != nil || !slices.Equal(b, help[undocumented]()) {
		t.Errorf("golden = %q, %v; want the last update's help", b, err)
	}
}
