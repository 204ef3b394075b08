// Package report has the parts of a measurement's report that the measuring
// programs share (tools/load behind `make bench`, tools/compare behind `make
// compare`): the command that reproduces the run, the CPU it ran on, and the
// results as a JSON file. Each program prints its own table.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Command is the shell command that reproduces a run: prog, then args, each
// single-quoted when a POSIX shell would otherwise split or expand it.
func Command(prog string, args []string) string {
	quoted := make([]string, 0, len(args)+1)
	quoted = append(quoted, prog)
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted = append(quoted, a)
	}
	return strings.Join(quoted, " ")
}

// CPUModel is the model name of the CPU from /proc/cpuinfo, or "unknown
// CPU" where there is none (other systems, some ARM kernels).
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	return modelName(f)
}

// modelName reads the first "model name" of a /proc/cpuinfo.
func modelName(cpuinfo io.Reader) string {
	sc := bufio.NewScanner(cpuinfo)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// WriteJSON writes v as indented JSON to path, making its folder (e.g.
// .bench/) first. HTML characters are not escaped, so a "<token>" in a
// command stays readable.
func WriteJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
