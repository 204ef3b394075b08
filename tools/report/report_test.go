package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "plain", args: []string{"-bin", "bin", "-quick"}, want: "go run ./test/x -bin bin -quick"},
		{name: "space", args: []string{"-json", "a b.json"}, want: "go run ./test/x -json 'a b.json'"},
		{name: "empty", args: []string{"-modes", ""}, want: "go run ./test/x -modes ''"},
		{name: "single quote", args: []string{"it's"}, want: `go run ./test/x 'it'\''s'`},
		{name: "expansion", args: []string{"$HOME", "*", "GOMEMLIMIT=24MiB"}, want: "go run ./test/x '$HOME' '*' GOMEMLIMIT=24MiB"},
		{name: "none", want: "go run ./test/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Command("go run ./test/x", tt.args); got != tt.want {
				t.Errorf("Command = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".bench", "out.json")
	v := struct {
		Command string `json:"command"`
		N       int    `json:"n"`
	}{Command: "wrk -H 'Authorization: Bearer <token>' && x", N: 2}
	if err := WriteJSON(path, v); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"command\": \"wrk -H 'Authorization: Bearer <token>' && x\",\n  \"n\": 2\n}\n"
	if string(b) != want {
		t.Errorf("file = %q, want %q", b, want)
	}
}

func TestModelName(t *testing.T) {
	tests := []struct {
		name    string
		cpuinfo string
		want    string
	}{
		{name: "x86", cpuinfo: "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n", want: "Intel(R) Xeon(R) CPU @ 2.20GHz"},
		{name: "arm without a model name", cpuinfo: "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n", want: "unknown CPU"},
		{name: "empty", want: "unknown CPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modelName(strings.NewReader(tt.cpuinfo)); got != tt.want {
				t.Errorf("modelName = %q, want %q", got, tt.want)
			}
		})
	}
}
