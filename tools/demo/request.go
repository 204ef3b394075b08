package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// field is one header or form field. A value may hold a shell variable
// (show) for the printed command while the request sends value.
type field struct {
	name, value string
	show        string // the value as printed, e.g. "Bearer $TOKEN"; empty: value
}

// request is one HTTP call of the demo, runnable with curl or net/http and
// printable as a curl command.
type request struct {
	method  string
	url     string
	user    string // HTTP Basic "id:secret", or empty
	headers []field
	form    []field // an application/x-www-form-urlencoded POST body
}

// response is what the demo shows and checks.
type response struct {
	statusLine string // "HTTP/1.1 200 OK"
	status     int
	header     http.Header
	body       []byte
}

// curlArgs returns curl's arguments; with show, header values are the
// printed ones.
func (r request) curlArgs(show bool) []string {
	args := []string{"-sS", "-i"}
	if r.method != http.MethodGet && len(r.form) == 0 {
		args = append(args, "-X", r.method)
	}
	if r.user != "" {
		args = append(args, "-u", r.user)
	}
	for _, h := range r.headers {
		v := h.value
		if show && h.show != "" {
			v = h.show
		}
		args = append(args, "-H", h.name+": "+v)
	}
	for _, f := range r.form {
		v := f.value
		if show && f.show != "" {
			v = f.show
		}
		opt := "--data-urlencode"
		if url.QueryEscape(f.value) == f.value {
			opt = "-d" // nothing to encode; the shorter form reads better
		}
		args = append(args, opt, f.name+"="+v)
	}
	return append(args, r.url)
}

// command is the copy-pasteable curl command line.
func (r request) command() string {
	parts := []string{"curl"}
	for _, a := range r.curlArgs(true) {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell. Arguments that reference a
// variable ($TOKEN) are double-quoted so the shell expands them.
func shellQuote(s string) string {
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=@%+,", c)) {
			safe = false
			break
		}
	}
	switch {
	case safe && s != "":
		return s
	case strings.Contains(s, "$") && !strings.ContainsAny(s, "\"\\`"):
		return `"` + s + `"`
	default:
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
}

// runner sends requests with curl when it is on PATH, else with net/http.
type runner struct {
	curl   string // path of curl, or empty
	client *http.Client
}

func newRunner() *runner {
	curl, _ := exec.LookPath("curl")
	return &runner{curl: curl, client: &http.Client{Timeout: 10 * time.Second}}
}

// do sends r.
func (rn *runner) do(ctx context.Context, r request) (response, error) {
	if rn.curl != "" {
		return rn.doCurl(ctx, r)
	}
	return rn.doGo(ctx, r)
}

// doCurl runs curl -i and parses its output as an HTTP response.
func (rn *runner) doCurl(ctx context.Context, r request) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, rn.curl, r.curlArgs(false)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return response{}, fmt.Errorf("curl: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	resp, err := parseCurl(out)
	if err != nil {
		return response{}, fmt.Errorf("parse curl output: %w", err)
	}
	return resp, nil
}

// parseCurl splits curl -i output into status, headers and body. curl has
// already decoded a chunked body, so Transfer-Encoding is not applied again.
// Interim 1xx responses are skipped.
func parseCurl(out []byte) (response, error) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		line, err := r.ReadLine()
		if err != nil {
			return response{}, fmt.Errorf("status line: %w", err)
		}
		proto, status, ok := strings.Cut(line, " ")
		code, _, _ := strings.Cut(status, " ")
		n, err := strconv.Atoi(code)
		if !ok || !strings.HasPrefix(proto, "HTTP/") || err != nil {
			return response{}, fmt.Errorf("bad status line %q", line)
		}
		hdr, err := r.ReadMIMEHeader()
		if err != nil && !errors.Is(err, io.EOF) {
			return response{}, fmt.Errorf("headers: %w", err)
		}
		if n < 200 {
			continue
		}
		body, err := io.ReadAll(r.R)
		if err != nil {
			return response{}, err
		}
		// HTTP/2 status lines have no reason phrase; add it for display.
		if _, reason, _ := strings.Cut(status, " "); reason == "" {
			line += " " + http.StatusText(n)
		}
		return response{statusLine: line, status: n, header: http.Header(hdr), body: body}, nil
	}
}

// doGo sends the same request as curl would, with net/http.
func (rn *runner) doGo(ctx context.Context, r request) (response, error) {
	method := r.method
	var body io.Reader
	if len(r.form) > 0 {
		v := url.Values{}
		for _, f := range r.form {
			v.Add(f.name, f.value)
		}
		body = strings.NewReader(v.Encode())
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url, body)
	if err != nil {
		return response{}, err
	}
	if len(r.form) > 0 {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if id, secret, ok := strings.Cut(r.user, ":"); ok {
		req.SetBasicAuth(id, secret)
	}
	for _, h := range r.headers {
		req.Header.Add(h.name, h.value)
	}
	resp, err := rn.client.Do(req)
	if err != nil {
		return response{}, err
	}
	return readResponse(resp)
}

// readResponse reads and closes the body.
func readResponse(resp *http.Response) (response, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{
		statusLine: resp.Proto + " " + resp.Status,
		status:     resp.StatusCode,
		header:     resp.Header,
		body:       body,
	}, nil
}
