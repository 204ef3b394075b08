package policy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileBytes bounds CONFIG_FILE: a policy a person reads at a glance is a
// few kilobytes.
const maxFileBytes = 1 << 20

// fileFields are the fields each object of the file accepts. The decoder
// refuses any other, and a test checks that docs/config.schema.json
// declares exactly these.
var fileFields = map[string][]string{
	"":            {"providers", "rules", "default"},
	"provider":    {"name", "issuer", "jwks_url", "oidc_issuer_url", "jwks_file", "public_key_files", "hmac_secret_file", "ca_file", "bearer_token_file", "audiences", "algorithms", "clock_skew", "require_exp", "token_lookup", "claims_to_headers", "payload_header", "forward_token", "typ", "max_lifetime", "allow_sender_constrained", "login"},
	"login":       {"client_id", "client_secret_file", "cookie_key_file", "scopes", "callback_path", "sign_out_path", "cookie_name", "cookie_domain", "refresh", "refresh_ahead", "max_age", "allowed_redirect_hosts", "keep_id_token", "plain_http"},
	"rule":        {"name", "match", "require", "scopes", "claims", "raw_paths"},
	"match":       {"path", "prefix", "glob", "methods", "hosts"},
	"requirement": {"any_of", "all_of", "allow_missing"},
	"default":     {"require", "scopes", "claims"},
}

// ReadFile reads and decodes CONFIG_FILE. Every problem is reported
// at once, each as FILE:LINE: FIELD: PROBLEM.
func ReadFile(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("CONFIG_FILE: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("CONFIG_FILE: %w", err)
	}
	if len(raw) > maxFileBytes {
		return nil, fmt.Errorf("CONFIG_FILE: %s exceeds %d bytes", path, maxFileBytes)
	}
	return Decode(path, raw)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Decode decodes raw through yaml.Node, so that every error names its
// line and field, and unknown fields are refused.
func Decode(path string, raw []byte) (*Spec, error) {
	d := &decoder{file: path}
	pf := &Spec{Source: path, Sum: sha256.Sum256(raw)}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", path, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", path, msg)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty; it needs at least providers", path)
	}
	root := d.object(doc.Content[0], "", "")
	if root == nil {
		return nil, d.err()
	}
	if n := root.get("providers"); n != nil {
		d.providers(pf, n)
	} else {
		d.errorf(doc.Content[0], "providers", "required: at least one provider")
	}
	names := map[string]bool{}
	for _, p := range pf.Providers {
		names[p.Name] = true
	}
	if n := root.get("rules"); n != nil {
		d.rules(pf, n, names)
	}
	if n := root.get("default"); n != nil {
		o := d.object(n, "default", "default")
		if o != nil {
			pf.Default = d.requirementOf(o, "default", names)
			pf.DefaultSet = true
			o.done()
		}
	}
	root.done()
	d.crossChecks(pf)
	if err := d.err(); err != nil {
		return nil, err
	}
	return pf, nil
}
