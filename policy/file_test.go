package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

func TestDecodeFull(t *testing.T) {
	pf, err := ReadFile("testdata/policy/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Providers) != 5 || len(pf.Rules) != 9 || !pf.DefaultSet {
		t.Fatalf("decoded %d providers, %d rules, default %v; want 5, 9, true", len(pf.Providers), len(pf.Rules), pf.DefaultSet)
	}
	idp := pf.Providers[0]
	if idp.ClockSkew != time.Minute || idp.Issuers[0] != "https://idp.example.com/realms/main" ||
		len(idp.ClaimsToHeaders) != 3 || idp.ClaimsToHeaders[2].Claim != "realm_access.roles" || idp.ClaimsToHeaders[2].Header != "X-Auth-Roles" ||
		idp.PayloadHeader != "X-Auth-Payload" || len(idp.TokenLookup) != 2 || idp.TokenLookup[1] != (config.Lookup{Kind: config.InCookie, Name: "session"}) {
		t.Errorf("idp = %+v", idp)
	}
	if b := pf.Providers[4]; b.ClockSkew != 0 || strings.Join(b.Algorithms, ",") != "HS256" || b.TokenLookup[0].Kind != config.InQuery {
		t.Errorf("batch = %+v", b)
	}
	if l := pf.Providers[3]; l.RequireExp || strings.Join(l.Algorithms, ",") != strings.Join(config.DefaultAlgorithms, ",") {
		t.Errorf("legacy = %+v", l)
	}
	admin := pf.Rules[1].Require
	wantClaims := map[string][]any{
		"realm_access.roles": {"admin"}, "email_verified": {true}, "tenant": {"acme", "globex"},
		"level": {int64(3)}, "ratio": {0.5},
	}
	for _, c := range admin.Claims {
		if !slices.Equal(c.Values, wantClaims[c.Claim]) {
			t.Errorf("claim %s = %#v, want %#v", c.Claim, c.Values, wantClaims[c.Claim])
		}
	}
	kinds := []RequirementKind{}
	for _, r := range pf.Rules {
		kinds = append(kinds, r.Require.Kind)
	}
	want := []RequirementKind{RequirePublic, RequireAnyOf, RequireAnyOf, RequireAllOf,
		RequireAllowMissing, RequireAllowMissing, RequireAnyOf, RequireAnyOf, RequireDeny}
	if !slices.Equal(kinds, want) {
		t.Errorf("requirement kinds = %v, want %v", kinds, want)
	}
	if pf.Rules[2].Match.Glob != "/internal/*/jobs/**" || strings.Join(pf.Rules[1].Match.Hosts, ",") != "admin.example.com,*.admin.example.com" {
		t.Errorf("matches = %+v, %+v", pf.Rules[2].Match, pf.Rules[1].Match)
	}
	// A file without default denies what no rule matches.
	min, err := ReadFile("testdata/policy/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if min.DefaultSet || min.Default.Kind != RequireDeny || min.Providers[0].Issuers[0] != "https://idp.example.com" {
		t.Errorf("minimal = %+v", min)
	}
}

func TestDecodeErrors(t *testing.T) {
	const ok = "providers:\n  - name: idp\n    issuer: https://idp.test\n    jwks_url: https://idp.test/jwks\n"
	tests := []struct {
		name    string
		doc     string
		wantErr []string
	}{
		{name: "empty", doc: "", wantErr: []string{"p.yaml: the file is empty"}},
		{name: "not yaml", doc: "providers: [\n", wantErr: []string{"p.yaml:"}},
		{name: "unknown top-level field", doc: ok + "rulez: []\n", wantErr: []string{"p.yaml:5: rulez: unknown field; known fields are providers, rules, default"}},
		{name: "unknown provider field", doc: ok + "    audience: [api]\n", wantErr: []string{"p.yaml:5: providers[0].audience: unknown field"}},
		{name: "no providers", doc: "rules: []\n", wantErr: []string{"p.yaml:1: providers: required"}},
		{name: "two key sources", doc: ok + "    jwks_file: /x\n", wantErr: []string{"p.yaml:2: providers[0]: jwks_url and jwks_file: set exactly one key source"}},
		{name: "no key source", doc: "providers:\n  - name: idp\n    issuer: x\n", wantErr: []string{"p.yaml:2: providers[0]: no key source"}},
		{name: "no issuer", doc: "providers:\n  - name: idp\n    jwks_url: https://x/j\n", wantErr: []string{"p.yaml:2: providers[0].issuer: required"}},
		{name: "issuer not the OIDC URL", doc: "providers:\n  - name: idp\n    oidc_issuer_url: https://a.test\n    issuer: https://b.test\n", wantErr: []string{"p.yaml:4: providers[0].issuer: \"https://b.test\" differs from oidc_issuer_url"}},
		{name: "relative URL", doc: "providers:\n  - name: idp\n    issuer: x\n    jwks_url: /jwks\n", wantErr: []string{"p.yaml:4: providers[0].jwks_url: \"/jwks\" is not an absolute http(s) URL"}},
		{name: "provider twice", doc: ok + "  - name: idp\n    issuer: y\n    jwks_file: /y\n", wantErr: []string{`p.yaml:5: providers[1].name: provider "idp" is defined twice`}},
		{name: "reserved provider name", doc: "providers:\n  - name: public\n    issuer: x\n    jwks_file: /x\n", wantErr: []string{`p.yaml:2: providers[0].name: "public" is a requirement`}},
		{name: "alg none", doc: ok + "    algorithms: [RS256, none]\n", wantErr: []string{"p.yaml:5: providers[0].algorithms: none is never allowed"}},
		{name: "HS256 without a secret", doc: ok + "    algorithms: [HS256]\n", wantErr: []string{"providers[0].algorithms: HS256 needs hmac_secret_file"}},
		{name: "skew not a duration", doc: ok + "    clock_skew: 30\n", wantErr: []string{`p.yaml:5: providers[0].clock_skew: want a string, not int 30 (quote it: "30")`}},
		{name: "skew too large", doc: ok + "    clock_skew: 1h\n", wantErr: []string{"p.yaml:5: providers[0].clock_skew: 1h0m0s: want between 0 and 5m"}},
		{name: "bad token lookup", doc: ok + "    token_lookup: [body:x]\n", wantErr: []string{`p.yaml:5: providers[0].token_lookup[0]: "body:x": want header:NAME`}},
		{name: "reserved claim header", doc: ok + "    claims_to_headers: {sub: Host}\n", wantErr: []string{"p.yaml:5: providers[0].claims_to_headers.sub: Host: header Host is reserved"}},
		{name: "header mapped twice", doc: ok + "    claims_to_headers: {sub: X-A, email: x_a}\n", wantErr: []string{"providers[0].claims_to_headers.email: header x_a is mapped twice"}},
		{name: "claim header is a token lookup", doc: ok + "    claims_to_headers: {sub: X-Token}\n  - name: k8s\n    issuer: k\n    jwks_file: /k\n    token_lookup: [header:X-Token]\n",
			wantErr: []string{"p.yaml:2: providers[0].claims_to_headers: header X-Token is where provider k8s reads its token"}},
		{name: "a list where a string goes", doc: "providers:\n  - name: [idp]\n", wantErr: []string{"p.yaml:2: providers[0].name: want a string, not a list"}},
		{name: "raw_paths not a boolean", doc: ok + "rules:\n  - name: files\n    match: {prefix: /files}\n    require: public\n    raw_paths: yes please\n",
			wantErr: []string{"p.yaml:9: rules[0].raw_paths:"}},
		{name: "raw_paths on a deny rule", doc: ok + "rules:\n  - name: files\n    match: {prefix: /files}\n    require: deny\n    raw_paths: true\n",
			wantErr: []string{"p.yaml:9: rules[0].raw_paths: a deny rule forwards nothing"}},
		{name: "unknown provider in a rule", doc: ok + "rules:\n  - name: admin\n    match: {prefix: /admin}\n    require: idb\n",
			wantErr: []string{`p.yaml:8: rules[0].require: unknown provider "idb"; providers are idp`}},
		{name: "unknown provider in any_of", doc: ok + "rules:\n  - name: r\n    match: {prefix: /}\n    require: {any_of: [idp, k8s]}\n",
			wantErr: []string{`p.yaml:8: rules[0].require.any_of: unknown provider "k8s"`}},
		{name: "two requirement kinds", doc: ok + "rules:\n  - name: r\n    match: {prefix: /}\n    require: {any_of: [idp], all_of: [idp]}\n",
			wantErr: []string{"p.yaml:8: rules[0].require: set exactly one of any_of, all_of and allow_missing"}},
		{name: "unnamed rule", doc: ok + "rules:\n  - match: {prefix: /}\n    require: public\n", wantErr: []string{"p.yaml:6: rules[0].name: required"}},
		{name: "rule named twice", doc: ok + "rules:\n  - {name: r, match: {prefix: /a}, require: public}\n  - {name: r, match: {prefix: /b}, require: public}\n",
			wantErr: []string{`p.yaml:7: rules[1].name: "r" is taken`}},
		{name: "rule named default", doc: ok + "rules:\n  - {name: default, match: {prefix: /a}, require: public}\n", wantErr: []string{`rules[0].name: "default" is taken`}},
		{name: "no match", doc: ok + "rules:\n  - name: r\n    require: public\n", wantErr: []string{"p.yaml:6: rules[0].match: required"}},
		{name: "two paths", doc: ok + "rules:\n  - name: r\n    match:\n      path: /a\n      glob: /b/*\n    require: public\n",
			wantErr: []string{"p.yaml:9: rules[0].match.glob: only one of path, prefix and glob may be set"}},
		{name: "unclean prefix", doc: ok + "rules:\n  - name: r\n    match:\n      prefix: /a/../b\n    require: public\n",
			wantErr: []string{`p.yaml:8: rules[0].match.prefix: "/a/../b" is not a clean path (did you mean "/b"?)`}},
		{name: "lower-case method", doc: ok + "rules:\n  - name: r\n    match:\n      prefix: /\n      methods: [get]\n    require: public\n",
			wantErr: []string{`p.yaml:9: rules[0].match.methods: "get": methods are case sensitive; write "GET"`}},
		{name: "public with scopes", doc: ok + "rules:\n  - name: r\n    match: {prefix: /}\n    require: public\n    scopes: [x]\n",
			wantErr: []string{"p.yaml:9: rules[0].scopes: public looks at no token, so it cannot require scopes"}},
		{name: "claim value is a mapping", doc: ok + "default:\n  require: idp\n  claims: {groups: {a: b}}\n",
			wantErr: []string{"p.yaml:7: default.claims.groups: want a string, a number or a bool, not a mapping"}},
		{name: "default without require", doc: ok + "default:\n  scopes: [x]\n", wantErr: []string{"p.yaml:6: default.require: required"}},
		{name: "CA file on a JWKS file", doc: "providers:\n  - name: idp\n    issuer: x\n    jwks_file: /x\n    ca_file: /ca.pem\n",
			wantErr: []string{"p.yaml:5: providers[0].ca_file: applies only to jwks_url and oidc_issuer_url"}},
		{name: "token file on a PEM key", doc: "providers:\n  - name: idp\n    issuer: x\n    public_key_files: [/k.pem]\n    bearer_token_file: /t\n",
			wantErr: []string{"p.yaml:5: providers[0].bearer_token_file: applies only to jwks_url and oidc_issuer_url"}},
		{name: "token over plain http", doc: "providers:\n  - name: idp\n    issuer: x\n    jwks_url: http://keys.example/jwks\n    bearer_token_file: /t\n",
			wantErr: []string{"p.yaml:5: providers[0].bearer_token_file: the token would cross the network in plain text to http://keys.example/jwks"}},
		{name: "empty CA file", doc: ok + "    ca_file: \"\"\n", wantErr: []string{"p.yaml:5: providers[0].ca_file: must not be empty"}},
		{name: "every problem at once", doc: "providers:\n  - name: idp\n    issuer: x\n    jwks_url: nope\n    color: red\nrules:\n  - {name: r, match: {prefix: /}, require: nobody}\n",
			wantErr: []string{"p.yaml:4: providers[0].jwks_url", "p.yaml:5: providers[0].color: unknown field", `p.yaml:7: rules[0].require: unknown provider "nobody"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("p.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error:\n%v\nlacks %q", err, want)
				}
			}
		})
	}
}

// TestDecodeFollowsAliases: YAML anchors work, e.g. one list of audiences
// shared by two providers.
func TestDecodeFollowsAliases(t *testing.T) {
	doc := "providers:\n  - name: a\n    issuer: a\n    jwks_file: /a\n    audiences: &auds [x, y]\n  - name: b\n    issuer: b\n    jwks_file: /b\n    audiences: *auds\n"
	pf, err := Decode("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pf.Providers[1].Audiences, ","); got != "x,y" {
		t.Errorf("b's audiences = %s, want x,y", got)
	}
}

// schemaKinds maps each object of fileFields to where the schema declares
// its properties.
var schemaKinds = map[string]string{
	"":            "",
	"provider":    "provider",
	"login":       "login",
	"rule":        "rule",
	"match":       "match",
	"requirement": "requirementObject",
	"default":     "default",
}

func loadSchemaDoc(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../docs/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestSchemaAgreesWithTheDecoder: the schema declares exactly the fields
// the decoder accepts, object by object, and every schema object with
// properties is one the decoder knows.
func TestSchemaAgreesWithTheDecoder(t *testing.T) {
	doc := loadSchemaDoc(t)
	defs := doc["$defs"].(map[string]any)
	props := func(def string) []string {
		obj := doc
		if def != "" {
			obj = defs[def].(map[string]any)
		}
		var names []string
		for k := range obj["properties"].(map[string]any) {
			names = append(names, k)
		}
		slices.Sort(names)
		return names
	}
	for kind, fields := range fileFields {
		def, ok := schemaKinds[kind]
		if !ok {
			t.Errorf("decoder object %q has no place in the schema (add it to schemaKinds)", kind)
			continue
		}
		want := slices.Sorted(slices.Values(fields))
		if got := props(def); !slices.Equal(got, want) {
			t.Errorf("%q: schema declares %v, the decoder accepts %v", kind, got, want)
		}
	}
	for name, d := range defs {
		if _, has := d.(map[string]any)["properties"]; !has {
			continue
		}
		if !slices.Contains(slices.Collect(mapValues(schemaKinds)), name) {
			t.Errorf("schema object $defs/%s is unknown to the decoder", name)
		}
	}
	for kind := range schemaKinds {
		if _, ok := fileFields[kind]; !ok {
			t.Errorf("schemaKinds names %q, which the decoder does not have", kind)
		}
	}
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	doc := loadSchemaDoc(t)
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// asJSON turns a YAML document into the value a JSON parser would give.
func asJSON(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var readmeYAML = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// configExamples are the testdata files and every YAML block of the README
// and docs/policy.md that is a CONFIG_FILE (it has a top-level providers key).
func configExamples(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	files, _ := filepath.Glob("testdata/policy/*.yaml")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = raw
	}
	n := 0
	for _, doc := range []string{"README.md", "docs/policy.md"} {
		raw, err := os.ReadFile("../" + doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range readmeYAML.FindAllSubmatch(raw, -1) {
			if regexp.MustCompile(`(?m)^providers:`).Match(m[1]) {
				out[doc+" block "+string(rune('0'+i))] = m[1]
				n++
			}
		}
	}
	if n == 0 {
		t.Error("docs/policy.md has no CONFIG_FILE example")
	}
	return out
}

// TestExamplesValidate: every example is valid for the schema and for the
// decoder alike.
func TestExamplesValidate(t *testing.T) {
	sch := compileSchema(t)
	for name, raw := range configExamples(t) {
		if err := sch.Validate(asJSON(t, raw)); err != nil {
			t.Errorf("%s does not validate against the schema: %v", name, err)
		}
		if _, err := Decode(name, raw); err != nil {
			t.Errorf("%s does not decode: %v", name, err)
		}
	}
}

// TestSchemaRefusesWhatTheDecoderRefuses, for the mistakes an editor
// should catch as you type.
func TestSchemaRefusesWhatTheDecoderRefuses(t *testing.T) {
	sch := compileSchema(t)
	const p = "providers:\n  - name: idp\n    issuer: https://idp.test\n"
	docs := map[string]string{
		"unknown field":             p + "    jwks_url: https://idp.test/j\n    audience: [x]\n",
		"two key sources":           p + "    jwks_url: https://idp.test/j\n    jwks_file: /x\n",
		"no key source":             p,
		"skew as a number":          p + "    jwks_file: /x\n    clock_skew: 30\n",
		"alg none":                  p + "    jwks_file: /x\n    algorithms: [none]\n",
		"bad lookup":                p + "    jwks_file: /x\n    token_lookup: [body:x]\n",
		"rule without require":      p + "    jwks_file: /x\nrules:\n  - {name: r, match: {prefix: /}}\n",
		"match with two paths":      p + "    jwks_file: /x\nrules:\n  - {name: r, match: {prefix: /, path: /a}, require: public}\n",
		"two requirement kinds":     p + "    jwks_file: /x\nrules:\n  - {name: r, match: {prefix: /}, require: {any_of: [idp], all_of: [idp]}}\n",
		"lower-case method":         p + "    jwks_file: /x\nrules:\n  - {name: r, match: {prefix: /, methods: [get]}, require: public}\n",
		"claim value mapping":       p + "    jwks_file: /x\ndefault: {require: idp, claims: {g: {a: b}}}\n",
		"provider named deny":       "providers:\n  - {name: deny, issuer: x, jwks_file: /x}\n",
		"rule named default":        p + "    jwks_file: /x\nrules:\n  - {name: default, match: {prefix: /}, require: public}\n",
		"CA file on a JWKS file":    p + "    jwks_file: /x\n    ca_file: /ca.pem\n",
		"token file on an HMAC key": p + "    hmac_secret_file: /s\n    bearer_token_file: /t\n",
	}
	for name, doc := range docs {
		if err := sch.Validate(asJSON(t, []byte(doc))); err == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
		if _, err := Decode("p.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: the decoder accepts it", name)
		}
	}
}
