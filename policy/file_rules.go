package policy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

func (d *decoder) rules(pf *Spec, n *yaml.Node, providers map[string]bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "rules", "want a list of rules, not %s", describe(n))
		return
	}
	seen := map[string]bool{DefaultRule: true}
	for i, item := range n.Content {
		path := fmt.Sprintf("rules[%d]", i)
		o := d.object(item, path, "rule")
		if o == nil {
			continue
		}
		var r Rule
		if nn := o.get("name"); nn == nil {
			d.errorf(o.node, path+".name", "required: rules are named in logs, metrics and explain")
		} else if s, ok := d.str(nn, path+".name"); ok {
			if !namePattern.MatchString(s) {
				d.errorf(nn, path+".name", "%q: a name is letters, digits and _ . : / -", s)
			}
			if seen[s] {
				d.errorf(nn, path+".name", "%q is taken", s)
			}
			seen[s] = true
			r.Name = s
		}
		if m := o.get("match"); m == nil {
			d.errorf(o.node, path+".match", "required (prefix: / matches every request)")
		} else {
			r.Match = d.match(m, path+".match")
		}
		r.Require = d.requirementOf(o, path, providers)
		if v := o.get("raw_paths"); v != nil {
			r.RawPaths = d.boolean(v, path+".raw_paths")
			if r.RawPaths && r.Require.Kind == RequireDeny {
				d.errorf(v, path+".raw_paths", "a deny rule forwards nothing, so raw_paths means nothing here")
			}
		}
		o.done()
		pf.Rules = append(pf.Rules, r)
	}
}

func (d *decoder) match(n *yaml.Node, path string) Match {
	o := d.object(n, path, "match")
	if o == nil {
		return Match{}
	}
	defer o.done()
	var m Match
	for _, f := range []struct {
		name string
		dst  *string
	}{{"path", &m.Path}, {"prefix", &m.Prefix}, {"glob", &m.Glob}} {
		if v := o.get(f.name); v != nil {
			*f.dst, _ = d.str(v, path+"."+f.name)
		}
	}
	if v := o.get("methods"); v != nil {
		m.Methods = d.strings(v, path+".methods")
	}
	if v := o.get("hosts"); v != nil {
		m.Hosts = d.strings(v, path+".hosts")
	}
	if err := m.Validate(); err != nil {
		for _, e := range unjoin(err) {
			// "FIELD: problem" from Validate; point at the field's line.
			field, msg, _ := strings.Cut(e.Error(), ": ")
			at := o.node
			if v := o.fields[field]; v != nil {
				at = v
			}
			d.errorf(at, path+"."+field, "%s", msg)
		}
	}
	return m
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// requirementOf reads require, scopes and claims of a rule or the default.
// It is long because each of the three forms of require (a name, a keyword,
// a mapping) has its own errors, and they read best side by side.
func (d *decoder) requirementOf(o *object, path string, providers map[string]bool) Requirement {
	var req Requirement
	n := o.get("require")
	if n == nil {
		d.errorf(o.node, path+".require", "required: public, deny, a provider, or {any_of|all_of|allow_missing: [providers]}")
		return req
	}
	fp := path + ".require"
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := d.str(n, fp)
		if !ok {
			return req
		}
		switch s {
		case "public":
			req.Kind = RequirePublic
		case "deny":
			req.Kind = RequireDeny
		default:
			req.Kind, req.Providers = RequireAnyOf, []string{s}
			if !providers[s] {
				d.errorf(n, fp, "unknown provider %q%s", s, known(providers))
			}
		}
	case yaml.MappingNode:
		ro := d.object(n, fp, "requirement")
		if ro == nil {
			return req
		}
		var kinds []string
		for _, k := range []struct {
			name string
			kind RequirementKind
		}{{"any_of", RequireAnyOf}, {"all_of", RequireAllOf}, {"allow_missing", RequireAllowMissing}} {
			v := ro.get(k.name)
			if v == nil {
				continue
			}
			kinds = append(kinds, k.name)
			req.Kind = k.kind
			kp := fp + "." + k.name
			if v.Kind == yaml.ScalarNode && k.kind == RequireAllowMissing {
				if s, ok := d.str(v, kp); ok {
					req.Providers = []string{s}
				}
			} else {
				req.Providers = d.strings(v, kp)
				if len(req.Providers) == 0 && v.Kind == yaml.SequenceNode {
					d.errorf(v, kp, "name at least one provider")
				}
			}
			for _, name := range req.Providers {
				if !providers[name] {
					d.errorf(v, kp, "unknown provider %q%s", name, known(providers))
				}
			}
		}
		ro.done()
		if len(kinds) != 1 {
			d.errorf(n, fp, "set exactly one of any_of, all_of and allow_missing")
		}
	default:
		d.errorf(n, fp, "want public, deny, a provider name, or {any_of|all_of|allow_missing: [providers]}, not %s", describe(n))
		return req
	}
	needsToken := req.Kind != RequirePublic && req.Kind != RequireDeny
	if v := o.get("scopes"); v != nil {
		req.Scopes = d.strings(v, path+".scopes")
		for i, s := range req.Scopes {
			if strings.ContainsAny(s, " \t") {
				d.errorf(resolveAlias(v.Content[i]), fmt.Sprintf("%s.scopes[%d]", path, i), "%q: a scope is one word", s)
			}
		}
		if !needsToken {
			d.errorf(v, path+".scopes", "%s looks at no token, so it cannot require scopes", req.Kind)
		}
	}
	if v := o.get("claims"); v != nil {
		req.Claims = d.claims(v, path+".claims")
		if !needsToken {
			d.errorf(v, path+".claims", "%s looks at no token, so it cannot require claims", req.Kind)
		}
	}
	return req
}

func known(providers map[string]bool) string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "; providers are " + strings.Join(names, ", ")
}

// claims reads required claim values: claim: value, or claim: [values]
// (any one suffices).
func (d *decoder) claims(n *yaml.Node, path string) []ClaimRequirement {
	var out []ClaimRequirement
	d.claimMap(n, path, "a mapping of claim: value or claim: [values]", func(claim, fp string, v *yaml.Node) {
		cr := ClaimRequirement{Claim: claim}
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
			if len(items) == 0 {
				d.errorf(v, fp, "name at least one value")
			}
		}
		for _, item := range items {
			if val, ok := d.claimValue(resolveAlias(item), fp); ok {
				cr.Values = append(cr.Values, val)
			}
		}
		out = append(out, cr)
	})
	return out
}

// claimValue reads a string, an integer, a number or a bool. The type
// matters: 42 matches the number 42 in a token, "42" the string.
func (d *decoder) claimValue(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want a string, a number or a bool, not %s", describe(n))
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!bool":
		b, _ := strconv.ParseBool(n.Value)
		return b, true
	case "!!int":
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.errorf(n, path, "%s: not a 64-bit integer", n.Value)
			return nil, false
		}
		return i, true
	case "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorf(n, path, "%s: not a finite number", n.Value)
			return nil, false
		}
		return f, true
	}
	d.errorf(n, path, "want a string, a number or a bool, not %s", describe(n))
	return nil, false
}
