package revocation

import (
	"encoding/json"
	"testing"
)

// FuzzParse: a list from the network or a ConfigMap is attacker-controlled
// input. Parse must never panic, and whatever it accepts must survive a
// round trip through Document unchanged in size.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"tokens":[{"iss":"i","jti":"a","exp":1772370000}],"subjects":[{"iss":"i","sub":"s","issued_before":1772366400,"exp":1772370000.5}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, err := Parse(raw, t0, 1<<16)
		if err != nil {
			return
		}
		tokens, subjects := l.Len()
		b, err := json.Marshal(l.Document())
		if err != nil {
			t.Fatalf("Document does not encode: %v", err)
		}
		again, err := Parse(b, t0, 0)
		if err != nil {
			t.Fatalf("Parse(Document()) = %v\n%s", err, b)
		}
		if t2, s2 := again.Len(); t2 != tokens || s2 != subjects {
			t.Fatalf("round trip changed the size: %d,%d -> %d,%d", tokens, subjects, t2, s2)
		}
	})
}
