package comparison

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// process is one process of the comparison. It can be started again after it
// exited (the issuer's restart), with the same environment and the log
// appended to.
type process struct {
	job     string // issuer, sidecar-jwt, ...
	bin     string
	env     []string
	logPath string

	*proc.Child // the current run, set by start
}

// start runs the process, its output appended to its log file. Only
// ChildEnv is inherited, so a variable set in the user's shell cannot
// change what is measured.
func (p *process) start() error {
	cmd := exec.Command(p.bin)
	cmd.Env = proc.ChildEnv(p.env...)
	c, err := proc.StartChild(p.job, p.logPath, cmd)
	if err != nil {
		return err
	}
	p.Child = c
	return nil
}

// probeClient, for the /metrics scrapes, opens a fresh connection each
// time and never follows a proxy.
var probeClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// runCommand runs bin with args and returns its combined output.
func runCommand(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
