package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli/clitest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// minimal is the smallest valid environment.
func minimal() map[string]string {
	return map[string]string{
		"TOKEN_URL":     "http://127.0.0.1:8080/token",
		"CLIENT_ID":     "loadgen",
		"CLIENT_SECRET": "s3cret",
		"TARGETS":       "http://127.0.0.1:7070/a,http://127.0.0.1:7080/a",
	}
}

func TestHelpGolden(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	clitest.Help[Config](t, out.Bytes(), "testdata/help.golden", *update)
}

func TestVersionAndUnknownArgument(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "jwt-loadgen ") {
		t.Errorf("--version: exit %d, output %q; want 0 and the name and version", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--fast"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown argument "--fast"`) {
		t.Errorf("unknown argument: exit %d, stderr %q; want 2 and the argument named", code, errOut.String())
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr []string
	}{
		{name: "valid"},
		{name: "token url missing", unset: []string{"TOKEN_URL"}, wantErr: []string{"TOKEN_URL: required but not set"}},
		{name: "token url relative", set: map[string]string{"TOKEN_URL": "/token"}, wantErr: []string{"TOKEN_URL:"}},
		{name: "client id missing", unset: []string{"CLIENT_ID"}, wantErr: []string{"CLIENT_ID: required but not set"}},
		{name: "no secret", unset: []string{"CLIENT_SECRET"}, wantErr: []string{"CLIENT_SECRET: set CLIENT_SECRET or CLIENT_SECRET_FILE"}},
		{name: "two secrets", set: map[string]string{"CLIENT_SECRET_FILE": "/s"}, wantErr: []string{"not both"}},
		{name: "targets missing", unset: []string{"TARGETS"}, wantErr: []string{"TARGETS: required but not set"}},
		{name: "targets empty items", set: map[string]string{"TARGETS": " , "}, wantErr: []string{"TARGETS: at least one URL"}},
		{name: "target not http", set: map[string]string{"TARGETS": "ftp://x/"}, wantErr: []string{`TARGETS: "ftp://x/"`}},
		{name: "target twice", set: map[string]string{"TARGETS": "http://a/x, http://a/x"}, wantErr: []string{"listed twice"}},
		{name: "rate zero", set: map[string]string{"RATE": "0"}, wantErr: []string{"RATE: want more than 0"}},
		{name: "rate NaN", set: map[string]string{"RATE": "NaN"}, wantErr: []string{"RATE: want more than 0"}},
		{name: "rate too high", set: map[string]string{"RATE": "1e6"}, wantErr: []string{"RATE:"}},
		{name: "rate not a number", set: map[string]string{"RATE": "fast"}, wantErr: []string{"RATE:"}},
		{name: "concurrency zero", set: map[string]string{"CONCURRENCY": "0"}, wantErr: []string{"CONCURRENCY: must be at least 1"}},
		{name: "duration negative", set: map[string]string{"DURATION": "-1s"}, wantErr: []string{"DURATION: must not be negative"}},
		{name: "duration not a duration", set: map[string]string{"DURATION": "long"}, wantErr: []string{"DURATION:"}},
		{name: "timeout zero", set: map[string]string{"REQUEST_TIMEOUT": "0s"}, wantErr: []string{"REQUEST_TIMEOUT: must be positive"}},
		{name: "report zero", set: map[string]string{"REPORT_INTERVAL": "0s"}, wantErr: []string{"REPORT_INTERVAL: must be positive"}},
		{name: "admin not host:port", set: map[string]string{"ADMIN_ADDR": "9090"}, wantErr: []string{"ADMIN_ADDR:"}},
		{name: "log level", set: map[string]string{"LOG_LEVEL": "loud"}, wantErr: []string{"LOG_LEVEL:"}},
		{name: "all at once", set: map[string]string{"RATE": "-1", "CONCURRENCY": "-1"}, wantErr: []string{"RATE:", "CONCURRENCY:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := minimal()
			for k, v := range tt.set {
				env[k] = v
			}
			for _, k := range tt.unset {
				delete(env, k)
			}
			_, _, err := loadConfig(env)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("loadConfig = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig = nil, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestConfigErrorExitCode(t *testing.T) {
	env := minimal()
	env["RATE"] = "0"
	var out, errOut bytes.Buffer
	if code := run(context.Background(), nil, env, &out, &errOut); code != 2 {
		t.Errorf("exit = %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "jwt-loadgen: configuration error:") || !strings.Contains(errOut.String(), "RATE:") {
		t.Errorf("stderr = %q, want the configuration error naming RATE", errOut.String())
	}
}

func TestDefaultsAndTidyTargets(t *testing.T) {
	env := minimal()
	env["TARGETS"] = " http://a/x ,, http://b/y "
	c, secret, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Targets, []string{"http://a/x", "http://b/y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TARGETS = %q, want %q", got, want)
	}
	if c.Rate != 50 || c.Concurrency != 16 || c.Duration != 0 || c.AdminAddr != ":9090" {
		t.Errorf("defaults = rate %g, concurrency %d, duration %s, admin %q; want docs/contract.md's 50, 16, 0, :9090",
			c.Rate, c.Concurrency, c.Duration, c.AdminAddr)
	}
	if secret != "s3cret" {
		t.Errorf("secret = %q, want CLIENT_SECRET", secret)
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name       string
		file       string
		wantSecret string
		wantErr    string
	}{
		{name: "trailing newline dropped", file: write("nl", "from-file\n"), wantSecret: "from-file"},
		{name: "inner spaces kept", file: write("sp", " a b "), wantSecret: " a b "},
		{name: "empty", file: write("empty", "\n"), wantErr: "CLIENT_SECRET_FILE: the file is empty"},
		{name: "missing", file: filepath.Join(dir, "nope"), wantErr: "CLIENT_SECRET_FILE:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := minimal()
			delete(env, "CLIENT_SECRET")
			env["CLIENT_SECRET_FILE"] = tt.file
			_, secret, err := loadConfig(env)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("error = %v", err)
			case secret != tt.wantSecret:
				t.Errorf("secret = %q, want %q", secret, tt.wantSecret)
			}
		})
	}
}
