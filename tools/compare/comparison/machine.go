package comparison

import (
	"debug/buildinfo"
	"runtime"

	"github.com/jwt-sidecar/jwt-sidecar/tools/report"
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

// describeMachine reads the CPU model (Linux /proc/cpuinfo; "unknown CPU"
// elsewhere) and the Go version the sidecar binary was built with.
func describeMachine(sidecar string) Machine {
	m := Machine{CPU: report.CPUModel(), Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if bi, err := buildinfo.ReadFile(sidecar); err == nil {
		m.SidecarGo = bi.GoVersion
	}
	return m
}
