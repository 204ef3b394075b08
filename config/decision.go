package config

import (
	"errors"
	"net"
	"net/netip"
	"strings"
)

// CIDRs is a comma-separated list of CIDRs (DECISION_TRUSTED_PROXIES); a
// bare address is its own /32 or /128.
type CIDRs []netip.Prefix

// UnmarshalText parses a CIDR list (ParseCIDRs).
func (c *CIDRs) UnmarshalText(b []byte) error {
	out, err := ParseCIDRs(string(b))
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// ParseCIDRs parses comma-separated CIDRs. A prefix with host bits set is
// refused (10.0.0.1/8 is a typo more often than a wish).
func ParseCIDRs(s string) (CIDRs, error) {
	var out CIDRs
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return nil, errors.New(f + ": not a CIDR or an IP address")
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, errors.New(f + ": not a CIDR")
		}
		if pfx != pfx.Masked() {
			return nil, errors.New(f + ": host bits set (did you mean " + pfx.Masked().String() + "?)")
		}
		out = append(out, pfx)
	}
	return out, nil
}

// decisionProblems checks the decision listener's variables, and
// UPSTREAM_URL, which only a decision service only may go without.
func (c *Config) decisionProblems() []error {
	var errs []error
	bad := func(format string) { errs = append(errs, errors.New(format)) }
	if c.DecisionAddr == "" {
		if c.UpstreamURL == nil {
			bad("UPSTREAM_URL: required but not set (or set DECISION_ADDR for a forward-auth decision service only)")
		}
		return errs
	}
	if _, _, err := net.SplitHostPort(c.DecisionAddr); err != nil {
		errs = append(errs, errors.New("DECISION_ADDR: want host:port, e.g. 127.0.0.1:7072 ("+err.Error()+")"))
	}
	if c.DecisionAddr == c.AdminAddr || c.UpstreamURL != nil && c.DecisionAddr == c.ListenAddr {
		bad("DECISION_ADDR: must differ from LISTEN_ADDR and ADMIN_ADDR")
	}
	if len(c.DecisionTrustedProxies) == 0 {
		bad("DECISION_TRUSTED_PROXIES: must not be empty: nobody could ask for a decision")
	}
	if p := c.DecisionPathPrefix; p != "" && (!strings.HasPrefix(p, "/") || CleanPath(p) != strings.TrimSuffix(p, "/") && p != "/" || strings.ContainsAny(p, "?#%*")) {
		bad("DECISION_PATH_PREFIX: want a clean path such as /authz (or / for none), as Envoy's path_prefix")
	}
	return errs
}

// decisionUnused refuses the decision variables without DECISION_ADDR, and
// the proxy listener's without UPSTREAM_URL: nothing is silently ignored.
// It needs the environment, as unused does.
func (c *Config) decisionUnused(environ map[string]string) []error {
	var errs []error
	if c.DecisionAddr == "" {
		for _, name := range []string{"DECISION_TRUSTED_PROXIES", "DECISION_PATH_PREFIX"} {
			if strings.TrimSpace(environ[name]) != "" {
				errs = append(errs, errors.New(name+": only used with DECISION_ADDR; set DECISION_ADDR or remove it"))
			}
		}
		return errs
	}
	if c.UpstreamURL == nil {
		for _, name := range []string{"UPSTREAM_CA_FILE", "UPSTREAM_CLIENT_CERT_FILE", "UPSTREAM_CLIENT_KEY_FILE", "TLS_CERT_FILE", "TLS_CLIENT_CA_FILE", "BACKCHANNEL_LOGOUT_PATH", "LOGIN_CLIENT_ID"} {
			if strings.TrimSpace(environ[name]) != "" {
				errs = append(errs, errors.New(name+": applies to the proxy listener, which a decision service only (DECISION_ADDR without UPSTREAM_URL) does not run; remove it"))
			}
		}
	}
	return errs
}
