package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Addr    string        `env:"ADDR,required" help:"where to listen"`
	Timeout time.Duration `env:"TIMEOUT" envDefault:"5s" help:"how long to wait"`
	Size    int           `env:"SIZE" help:"how many"`
}

func TestParseNamesVariables(t *testing.T) {
	_, err := Parse[testConfig](map[string]string{"TIMEOUT": "soon", "SIZE": "many"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"ADDR: required but not set", "TIMEOUT:", "SIZE:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Timeout") {
		t.Errorf("error %q names the Go field", err)
	}
	c, err := Parse[testConfig](map[string]string{"ADDR": ":1"})
	if err != nil || c.Timeout != 5*time.Second {
		t.Errorf("Parse = %+v, %v; want the default timeout", c, err)
	}
}

func TestPrintVars(t *testing.T) {
	var b bytes.Buffer
	PrintVars[testConfig](&b)
	want := "  ADDR  default: (required)\n      where to listen\n" +
		"  TIMEOUT  default: 5s\n      how long to wait\n" +
		"  SIZE  default: (unset)\n      how many\n"
	if got := b.String(); got != want {
		t.Errorf("PrintVars =\n%s\nwant\n%s", got, want)
	}
}

func TestArgs(t *testing.T) {
	help := func(w io.Writer) { io.WriteString(w, "HELP") }
	tests := []struct {
		args     []string
		wantCode int
		wantDone bool
		wantOut  string
	}{
		{args: nil},
		{args: []string{"--help"}, wantDone: true, wantOut: "HELP"},
		{args: []string{"--version"}, wantDone: true, wantOut: "x v1\n"},
		{args: []string{"--bogus"}, wantCode: ExitConfig, wantDone: true},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code, done := Args(tt.args, "x", "v1", help, &out, &errOut)
		if code != tt.wantCode || done != tt.wantDone || out.String() != tt.wantOut {
			t.Errorf("Args(%q) = %d, %v, %q; want %d, %v, %q", tt.args, code, done, out.String(), tt.wantCode, tt.wantDone, tt.wantOut)
		}
	}
}

func TestCheckLog(t *testing.T) {
	if errs := CheckLog("info", "json"); len(errs) != 0 {
		t.Errorf("CheckLog(info, json) = %v", errs)
	}
	errs := CheckLog("loud", "xml")
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "LOG_LEVEL:") || !strings.HasPrefix(errs[1].Error(), "LOG_FORMAT:") {
		t.Errorf("CheckLog(loud, xml) = %v", errs)
	}
}
