package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HealthcheckTimeout bounds one health check; a container engine's own
// timeout (compose's healthcheck.timeout) may be shorter.
const HealthcheckTimeout = 5 * time.Second

// Healthcheck is the "healthcheck URL" mode every command has, because the
// runtime image (distroless) has no shell, curl or wget for a container
// engine's health check to run: `jwt-sidecar healthcheck
// http://127.0.0.1:7071/readyz` GETs the URL and exits 0 for a 2xx answer,
// 1 for anything else, 2 when misused. done is false, and nothing is
// printed, when args do not ask for it.
func Healthcheck(args []string, name string, stdout, stderr io.Writer) (code int, done bool) {
	if len(args) == 0 {
		return ExitOK, false
	}
	switch args[0] {
	case "healthcheck", "-healthcheck", "--healthcheck":
	default:
		return ExitOK, false
	}
	if len(args) != 2 {
		fmt.Fprintf(stderr, "%s: usage: %s healthcheck URL\n", name, name)
		return ExitConfig, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), HealthcheckTimeout)
	defer cancel()
	status, err := checkHealth(ctx, args[1])
	if err != nil {
		fmt.Fprintf(stderr, "%s: healthcheck: %v\n", name, err)
		if errors.Is(err, errHealthURL) {
			return ExitConfig, true
		}
		return ExitFailed, true
	}
	fmt.Fprintf(stdout, "%s: healthcheck: %s %s\n", name, args[1], status)
	return ExitOK, true
}

var errHealthURL = errors.New("want an absolute http or https URL")

// checkHealth GETs rawURL once and returns its status line when it is 2xx.
// No proxy from the environment: the check is about this container.
func checkHealth(ctx context.Context, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q: %w", rawURL, errHealthURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	// The start of the body says why, e.g. /readyz's "keys not loaded yet";
	// the engine keeps it in the container's health log.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("%s answered %s: %s", rawURL, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Status, nil
}
