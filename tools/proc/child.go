package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Child is a process that a program rather than a test starts (the demo,
// `make compare`, `make bench`), its output in a log file. Process is the
// same for tests, with testing.TB.
type Child struct {
	Name    string // for messages: jwt-issuer, sidecar-jwt, ...
	LogPath string
	Cmd     *exec.Cmd

	done    chan struct{} // closed once the process has exited
	waitErr error         // set before done is closed
}

// BinPath returns the path of the binary name in dir, with .exe on Windows.
func BinPath(dir, name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(dir, name)
}

// ChildEnv is a child's environment: the few variables any process needs,
// then vars. Nothing else is inherited, so a variable set in the user's
// shell cannot change what the child does.
func ChildEnv(vars ...string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "SYSTEMROOT", "USERPROFILE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, vars...)
}

// PickAddr returns a 127.0.0.1 address that was free a moment ago. Another
// process could take it before the child binds; the child then fails to
// start and says so. FreeAddr is the same for tests.
func PickAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// StartChild starts cmd, its stdout and stderr appended to logPath (created
// when missing, so a child started again adds to its log; remove the file
// first for a fresh one). The caller sets cmd.Env, usually to ChildEnv, and
// anything else the child needs.
func StartChild(name, logPath string, cmd *exec.Cmd) (*Child, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, LogPath: logPath, Cmd: cmd, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// PID is the process's id.
func (c *Child) PID() int { return c.Cmd.Process.Pid }

// Done is closed once the process has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Died is the error for a process that exited when it should not have,
// with the end of its log. Call it once Done is closed.
func (c *Child) Died() error {
	return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s", c.Name, c.waitErr, c.LogPath, c.Tail(20))
}

// Kill ends the process at once, as a crash would, and waits for it.
func (c *Child) Kill() {
	if c.Exited() {
		return
	}
	_ = c.Cmd.Process.Kill()
	<-c.done
}

// Stop sends SIGTERM, waits up to grace, then kills; it returns once the
// process is gone.
func (c *Child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	// Windows has no SIGTERM for other processes; kill at once there.
	if err := c.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.Kill()
		return
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.Kill()
	}
}

// Tail returns the last n lines of the log, indented.
func (c *Child) Tail(n int) string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", c.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// WaitReady polls url until it answers 200, the process exits, or timeout
// passes; the error of the last two shows the end of the log.
func (c *Child) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		status, err := Status(ctx, url)
		switch {
		case err != nil && ctx.Err() != nil && last != "":
			// The deadline cut this probe short (it may come with a
			// tick): the answer before says more.
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			return nil
		default:
			last = fmt.Sprintf("status %d", status)
		}
		select {
		case <-c.done:
			return c.Died()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready at %s after %s (last: %s); last lines of %s:\n%s", c.Name, url, timeout, last, c.LogPath, c.Tail(20))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Status does one GET of url and returns the status code. Each call opens
// a fresh connection, so probes leave no idle one behind in the process
// they ask, and none goes through a proxy: the process is on this machine.
func Status(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
