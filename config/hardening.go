package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// hardeningProblems checks the hardening variables and the listener ports:
// REQUIRED_TYP, MAX_TOKEN_LIFETIME, and LISTEN_ADDR/ADMIN_ADDR ports.
func (c *Config) hardeningProblems() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.RequiredTyp != "" && strings.ContainsAny(c.RequiredTyp, " \t,") {
		bad("REQUIRED_TYP", "%q: want one media type such as at+jwt", c.RequiredTyp)
	}
	if c.MaxTokenLifetime < 0 {
		bad("MAX_TOKEN_LIFETIME", "must not be negative (0 turns the check off)")
	}
	if c.AuthMode == "introspection" && (c.RequiredTyp != "" || c.MaxTokenLifetime != 0) {
		bad("AUTH_MODE", "introspection: REQUIRED_TYP and MAX_TOKEN_LIFETIME check JWTs verified locally; unset them")
	}
	for _, v := range []struct{ name, addr string }{{"LISTEN_ADDR", c.ListenAddr}, {"ADMIN_ADDR", c.AdminAddr}} {
		if err := portProblem(v.addr); err != nil {
			bad(v.name, "%v", err)
		}
	}
	return errs
}

// withParseErrors adds the variables that did not parse to the problems
// found in the rest, leaving out the problems of those variables: their
// fields hold zero values, not what the operator wrote. A type error thus
// hides no other problem.
func withParseErrors(problems []error, parseErr error) []error {
	if parseErr == nil {
		return problems
	}
	failed := cli.FailedVars(parseErr)
	out := problems[:0]
	for _, p := range problems {
		name, _, _ := strings.Cut(p.Error(), ":")
		if !failed[name] {
			out = append(out, p)
		}
	}
	if j, ok := parseErr.(interface{ Unwrap() []error }); ok {
		return append(out, j.Unwrap()...)
	}
	return append(out, parseErr)
}

// portProblem checks the port of a host:port listen address: a number from
// 0 to 65535 (0: any free port) or a service name net can resolve. An
// address that is not host:port at all is reported elsewhere.
func portProblem(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if port == "" {
		return errors.New("the port is missing, e.g. :7070")
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		if _, lerr := net.LookupPort("tcp", port); lerr != nil {
			return fmt.Errorf("port %q is neither a number from 0 to 65535 nor a known service name", port)
		}
		return nil
	}
	if n < 0 || n > 65535 {
		return fmt.Errorf("port %d is out of range: want 0 to 65535", n)
	}
	return nil
}
