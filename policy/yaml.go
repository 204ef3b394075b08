package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder collects errors, each with the file, line and field path.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.file, n.Line, msg))
}

func (d *decoder) err() error { return errors.Join(d.errs...) }

// at is FILE:LINE of n.
func (d *decoder) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", d.file, n.Line) }

// resolveAlias follows an alias to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// object is a mapping node whose fields are checked against fileFields.
type object struct {
	d      *decoder
	node   *yaml.Node
	path   string
	kind   string
	fields map[string]*yaml.Node
	used   map[string]bool
}

// object reads a mapping of the given kind (a key of fileFields). It
// refuses unknown and repeated fields, naming the known ones.
func (d *decoder) object(n *yaml.Node, path, kind string) *object {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (field: value), not %s", describe(n))
		return nil
	}
	o := &object{d: d, node: n, path: path, kind: kind, fields: map[string]*yaml.Node{}, used: map[string]bool{}}
	allowed := fileFields[kind]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a field name must be a plain word")
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			d.errorf(k, join(path, k.Value), "unknown field; known fields are %s", strings.Join(allowed, ", "))
			continue
		}
		if _, dup := o.fields[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "set twice")
			continue
		}
		o.fields[k.Value] = v
	}
	return o
}

// get returns a field's value node, or nil when absent.
func (o *object) get(name string) *yaml.Node {
	if !slices.Contains(fileFields[o.kind], name) {
		panic("decoder: field " + name + " is not declared for " + o.kind)
	}
	o.used[name] = true
	return resolveAlias(o.fields[name])
}

// done reports fields the file set that the decoder never read: a field
// declared in fileFields but forgotten in the code would otherwise be
// accepted and ignored.
func (o *object) done() {
	for name := range o.fields {
		if !o.used[name] {
			o.d.errorf(o.fields[name], join(o.path, name), "accepted but not read: a bug in jwt-sidecar")
		}
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "this"
}

// str reads a string. YAML's other scalars are refused rather than
// converted, as the schema does: quote them ("123").
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			hint = fmt.Sprintf(` (quote it: "%s")`, n.Value)
		}
		d.errorf(n, path, "want a string, not %s%s", describe(n), hint)
		return "", false
	}
	if n.Value == "" {
		d.errorf(n, path, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, path, "want true or false, not %s", describe(n))
		return false
	}
	b, _ := strconv.ParseBool(n.Value)
	return b
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s, ok := d.str(n, path)
	if !ok {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "want a Go duration such as 30s or 1m30s, not %q", s)
	}
	return v
}

// strings reads a list of strings; an item listed twice is refused.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, e.g. [a, b], not %s", describe(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = resolveAlias(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.str(item, p)
		if !ok {
			continue
		}
		if slices.Contains(out, s) {
			d.errorf(item, p, "%q is listed twice", s)
			continue
		}
		out = append(out, s)
	}
	return out
}
