package comparison

import (
	"bufio"
	"debug/buildinfo"
	"os"
	"runtime"
	"strings"
)

// Machine describes where the numbers were taken.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`                       // of this program
	SidecarGo string `json:"jwt_sidecar_go_version,omitempty"` // of the binary measured
}

// describeMachine reads the CPU model (Linux /proc/cpuinfo; "unknown"
// elsewhere) and the Go version the sidecar binary was built with.
func describeMachine(sidecar string) Machine {
	m := Machine{CPU: cpuModel(), Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if bi, err := buildinfo.ReadFile(sidecar); err == nil {
		m.SidecarGo = bi.GoVersion
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
