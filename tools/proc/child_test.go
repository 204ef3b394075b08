package proc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// childMode, set in a child's environment, makes the test binary act as
// that child instead of running the tests.
const childMode = "PROCTEST_CHILD_MODE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		os.Exit(actAsChild(mode, os.Getenv("PROCTEST_CHILD_ADDR")))
	}
	os.Exit(m.Run())
}

// actAsChild is the child: "exit" says bye and exits 3; "ready" and
// "unready" serve /ready with 200 or 503 on addr until SIGTERM, which
// "stubborn" ignores.
func actAsChild(mode, addr string) int {
	fmt.Println("child", mode, "started")
	if mode == "exit" {
		fmt.Println("bye")
		return 3
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	status := http.StatusOK
	if mode == "unready" {
		status = http.StatusServiceUnavailable
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	for range term {
		fmt.Println("got SIGTERM")
		if mode != "stubborn" {
			return 0
		}
	}
	return 1
}

// startChild runs the test binary as a child in mode, logging to log.
func startChild(t *testing.T, mode, log string) (*proc.Child, string) {
	t.Helper()
	addr := proctest.FreeAddr(t)
	cmd := exec.Command(os.Args[0])
	// GORACE: a race-enabled child otherwise sleeps a second at exit.
	cmd.Env = proc.ChildEnv(childMode+"="+mode, "PROCTEST_CHILD_ADDR="+addr, "GORACE=atexit_sleep_ms=0")
	c, err := proc.StartChild("child-"+mode, log, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c, "http://" + addr + "/ready"
}

func TestChildReadyThenStop(t *testing.T) {
	log := filepath.Join(t.TempDir(), "child.log")
	c, url := startChild(t, "ready", log)
	if err := c.WaitReady(t.Context(), url, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.Exited() {
		t.Fatal("Exited() = true while it serves")
	}
	c.Stop(15 * time.Second)
	if !c.Exited() {
		t.Fatal("Exited() = false after Stop")
	}
	if c.Cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit code = %d, want 0 after SIGTERM", c.Cmd.ProcessState.ExitCode())
	}
	if tail := c.Tail(1); tail != "    got SIGTERM" {
		t.Errorf("Tail(1) = %q, want the child's last line, indented", tail)
	}
}

func TestChildStopKillsAfterGrace(t *testing.T) {
	c, url := startChild(t, "stubborn", filepath.Join(t.TempDir(), "child.log"))
	if err := c.WaitReady(t.Context(), url, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Stop(time.Second)
	if !c.Exited() {
		t.Fatal("Exited() = false after Stop")
	}
	if !strings.Contains(c.Tail(5), "got SIGTERM") {
		t.Errorf("the child never saw SIGTERM:\n%s", c.Tail(5))
	}
	if status := c.Cmd.ProcessState.Sys().(syscall.WaitStatus); !status.Signaled() || status.Signal() != syscall.SIGKILL {
		t.Errorf("wait status = %v, want killed by SIGKILL after the grace", status)
	}
}

// TestChildDied covers a child that exits before it is ready: the error
// says so with the exit status and the end of the log, and a second start
// appends to the same log.
func TestChildDied(t *testing.T) {
	log := filepath.Join(t.TempDir(), "child.log")
	for range 2 {
		c, url := startChild(t, "exit", log)
		err := c.WaitReady(t.Context(), url, 15*time.Second)
		if err == nil {
			t.Fatal("WaitReady = nil for a child that exited")
		}
		for _, want := range []string{"child-exit exited unexpectedly", "exit status 3", "last lines of " + log, "    bye"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "bye\n"); got != 2 {
		t.Errorf("log has %d byes, want 2 (appended):\n%s", got, b)
	}
}

func TestChildNotReady(t *testing.T) {
	c, url := startChild(t, "unready", filepath.Join(t.TempDir(), "child.log"))
	err := c.WaitReady(t.Context(), url, 500*time.Millisecond)
	if err == nil {
		t.Fatal("WaitReady = nil for a child that answers 503")
	}
	for _, want := range []string{"child-unready not ready at " + url, "after 500ms", "status 503", "child unready started"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if c.Exited() {
		t.Error("WaitReady ended the child; stopping it is the caller's call")
	}
}

func TestChildWaitReadyCancelled(t *testing.T) {
	c, url := startChild(t, "unready", filepath.Join(t.TempDir(), "child.log"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.WaitReady(ctx, url, 15*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitReady = %v, want context.Canceled", err)
	}
}

func TestChildEnv(t *testing.T) {
	t.Setenv("JWT_SIDECAR_FROM_THE_SHELL", "1")
	t.Setenv("PATH", "/a:/b")
	got := proc.ChildEnv("UPSTREAM_URL=http://127.0.0.1:1", "PATH=/c")
	if slices.ContainsFunc(got, func(kv string) bool { return strings.HasPrefix(kv, "JWT_SIDECAR_FROM_THE_SHELL=") }) {
		t.Errorf("ChildEnv = %q: a variable of the shell leaked", got)
	}
	// exec.Cmd takes the last of duplicate keys: vars win.
	if i, j := slices.Index(got, "PATH=/a:/b"), slices.Index(got, "PATH=/c"); i < 0 || j < i {
		t.Errorf("ChildEnv = %q, want the inherited PATH before the given one", got)
	}
	if got[len(got)-2] != "UPSTREAM_URL=http://127.0.0.1:1" {
		t.Errorf("ChildEnv = %q, want vars last, in order", got)
	}
}
