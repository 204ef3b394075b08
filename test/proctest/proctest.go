// Package proctest runs the project's binaries as real processes: built
// once, started on free 127.0.0.1 ports, polled for readiness with a
// deadline (never a sleep), stopped with real signals, their logs shown when
// something fails. Start and Process are for tests; StartChild and Child are
// for the programs that run the binaries outside `go test` (the demo,
// tools/compare, tools/load), with a log file per process.
package proctest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// Build compiles the package in dir (e.g. ".") into a temporary folder and
// returns the binary and a function that removes it. It is for TestMain.
func Build(dir, name string) (binary string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", name+"-test")
	if err != nil {
		return "", nil, err
	}
	binary = filepath.Join(tmp, name)
	if out, err := exec.Command("go", "build", "-o", binary, dir).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return binary, func() { os.RemoveAll(tmp) }, nil
}

// FreeAddr returns a 127.0.0.1 address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := proc.PickAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Process is one running binary.
type Process struct {
	Cmd  *exec.Cmd
	logs *Buffer
	done chan error
}

// Start runs binary with exactly env. The process is killed when the test
// ends; its output is logged if the test failed.
func Start(t testing.TB, binary string, env []string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(binary), logs: &Buffer{}, done: make(chan error, 1)}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.logs, p.logs
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		p.wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(binary), p.logs.String())
		}
	})
	return p
}

// Logs is everything the process wrote so far.
func (p *Process) Logs() string { return p.logs.String() }

// WaitFor polls url until it answers want, for at most 15 s.
func (p *Process) WaitFor(t testing.TB, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 15s (last error: %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval, not a wait for readiness
	}
}

// ExitCode waits at most 30 s for the process to exit and returns its code.
func (p *Process) ExitCode(t testing.TB) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the process did not exit within 30s")
	}
	return -1
}

func (p *Process) wait() {
	err := <-p.done
	p.done <- err
}

// Buffer collects output written concurrently, such as a process's two
// pipes or a logger that server goroutines share, for a test to read.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
