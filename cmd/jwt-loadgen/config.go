package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// maxRate bounds RATE: past it the scheduler's 1 ms tick sends bursts, and
// a load generator that cannot keep its own schedule measures itself.
const maxRate = 100_000

// Config is the whole environment of jwt-loadgen: --help, parsing and
// validation walk this one struct. docs/contract.md fixes the first names; the
// rest are documented in the README.
type Config struct {
	TokenURL         string        `env:"TOKEN_URL,required" help:"the token endpoint; the client_credentials grant, client authenticated with HTTP Basic"`
	ClientID         string        `env:"CLIENT_ID,required" help:"the client's id"`
	ClientSecret     string        `env:"CLIENT_SECRET" help:"the client's secret (prefer CLIENT_SECRET_FILE: the environment leaks)"`
	ClientSecretFile string        `env:"CLIENT_SECRET_FILE" help:"a file holding the client's secret; one of this and CLIENT_SECRET is required"`
	Scope            string        `env:"SCOPE" help:"scope to ask for; empty: the issuer's default"`
	Targets          []string      `env:"TARGETS,required" help:"comma-separated URLs, each sent GET requests at RATE with the bearer token"`
	Rate             float64       `env:"RATE" envDefault:"50" help:"requests per second per target, on a fixed schedule (open loop)"`
	Concurrency      int           `env:"CONCURRENCY" envDefault:"16" help:"most requests in flight per target; a scheduled request that finds them all busy is dropped and counted"`
	Duration         time.Duration `env:"DURATION" envDefault:"0" help:"how long to send, then exit 0; 0: until SIGTERM"`
	RequestTimeout   time.Duration `env:"REQUEST_TIMEOUT" envDefault:"5s" help:"longest wait for one response; then the request counts as code error"`
	ReportInterval   time.Duration `env:"REPORT_INTERVAL" envDefault:"10s" help:"how often a one-line summary is logged at info"`
	AdminAddr        string        `env:"ADMIN_ADDR" envDefault:":9090" help:"/metrics, /healthz, /readyz (200 once the first token is in hand)"`
	LogLevel         string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat        string        `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`
}

// loadConfig parses environ and validates it; the error names every wrong
// variable. It reads CLIENT_SECRET_FILE, so the secret is in hand (and a
// missing file is a configuration error) before anything starts.
func loadConfig(environ map[string]string) (*Config, string, error) {
	c, err := cli.Parse[Config](environ)
	if err != nil {
		return nil, "", err
	}
	c.Targets = slices.DeleteFunc(trimAll(c.Targets), func(s string) bool { return s == "" })
	if err := c.Validate(); err != nil {
		return nil, "", err
	}
	secret := c.ClientSecret
	if c.ClientSecretFile != "" {
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, "", fmt.Errorf("CLIENT_SECRET_FILE: %w", err)
		}
		// A trailing newline is an editor's, not the secret's.
		if secret = strings.TrimRight(string(b), "\r\n"); secret == "" {
			return nil, "", errors.New("CLIENT_SECRET_FILE: the file is empty")
		}
	}
	return c, secret, nil
}

func trimAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strings.TrimSpace(s)
	}
	return out
}

// Validate checks every rule that needs neither the network nor the disk.
// It has no side effects and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if !absoluteHTTP(c.TokenURL) {
		bad("TOKEN_URL", "%q is not an absolute http(s) URL", c.TokenURL)
	}
	if c.ClientID == "" {
		bad("CLIENT_ID", "must not be empty")
	}
	switch {
	case c.ClientSecret != "" && c.ClientSecretFile != "":
		bad("CLIENT_SECRET", "set CLIENT_SECRET or CLIENT_SECRET_FILE, not both")
	case c.ClientSecret == "" && c.ClientSecretFile == "":
		bad("CLIENT_SECRET", "set CLIENT_SECRET or CLIENT_SECRET_FILE")
	}
	if len(c.Targets) == 0 {
		bad("TARGETS", "at least one URL is needed")
	}
	for i, u := range c.Targets {
		if !absoluteHTTP(u) {
			bad("TARGETS", "%q is not an absolute http(s) URL", u)
		}
		// Each target is one label value: a repeated URL would add both
		// schedules into one series and double its rate unseen.
		if slices.Index(c.Targets, u) != i {
			bad("TARGETS", "%q is listed twice", u)
		}
	}
	if !(c.Rate > 0 && c.Rate <= maxRate) { // also refuses NaN
		bad("RATE", "want more than 0 and at most %d requests per second per target", maxRate)
	}
	if c.Concurrency < 1 {
		bad("CONCURRENCY", "must be at least 1")
	}
	if c.Duration < 0 {
		bad("DURATION", "must not be negative")
	}
	if c.RequestTimeout <= 0 {
		bad("REQUEST_TIMEOUT", "must be positive")
	}
	if c.ReportInterval <= 0 {
		bad("REPORT_INTERVAL", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		bad("ADMIN_ADDR", "want host:port, e.g. :9090 (%v)", err)
	}
	errs = append(errs, cli.CheckLog(c.LogLevel, c.LogFormat)...)
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// printHelp writes the usage and every variable with its default and
// meaning, straight from Config's tags.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `jwt-loadgen: an open-loop load generator for comparing token verification modes.

It gets a token with the OAuth 2.0 client_credentials grant, refreshes it before it
expires (and keeps sending with the last one while the token service is down), and
sends GET requests with it to every target at a fixed rate. A request that comes due
while CONCURRENCY requests to its target are still in flight is dropped and counted,
never queued: the rate is the schedule's, not the servers'.

Usage: jwt-loadgen [--help | --version]
Configuration comes from the environment:

`)
	cli.PrintVars[Config](w)
	fmt.Fprint(w, `
Metrics (ADMIN_ADDR /metrics):
  jwt_loadgen_requests_total{target, code}        responses by status code; code "error" for transport errors and timeouts
  jwt_loadgen_request_duration_seconds{target}    end to end, client side
  jwt_loadgen_scheduled_total{target}             requests the schedule called for
  jwt_loadgen_dropped_total{target}               scheduled but not sent: CONCURRENCY requests were in flight
  jwt_loadgen_in_flight{target}                   requests sent and not yet answered
  jwt_loadgen_token_requests_total{result}        token fetches: ok or error
  jwt_loadgen_token_expiry_timestamp_seconds      when the token in use expires
  jwt_loadgen_build_info{version}
Once in flight requests are answered, scheduled = dropped + the sum of requests_total.
`)
}
