package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
)

// checkPortFree fails with a message naming the port if something listens
// on 127.0.0.1:port.
func checkPortFree(name string, port int, flagName string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d (for %s) is already in use on 127.0.0.1: stop whatever uses it, or pick another port with -%s", port, name, flagName)
	}
	return ln.Close()
}

// runCommand runs bin with args and returns its combined output.
func runCommand(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(bytes.TrimSpace(out)), err
}
