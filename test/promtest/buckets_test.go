package promtest

import "testing"

func TestBoundProblem(t *testing.T) {
	for _, le := range []string{"0.001", "1e-06", "1.78e-06", "0.000562", "10", "86400", "+Inf", "0.0401", "10800"} {
		if p := BoundProblem(le); p != "" {
			t.Errorf("%s: %s", le, p)
		}
	}
	for _, le := range []string{"0.0009999999999999996", "0.0017782794100389228", "0.00099999", "1.000001", "0.0010", "1e-6", "x"} {
		if BoundProblem(le) == "" {
			t.Errorf("%s passed", le)
		}
	}
}
