// Command demo runs the jwt-sidecar demo: it starts jwt-issuer, echo-upstream
// and jwt-sidecar on 127.0.0.1, walks through the stateless verification
// story with curl (or the same requests sent with Go when curl is missing),
// a DPoP-bound token and a revocation among its steps, ends with a short comparison of jwt and introspection modes through an
// issuer outage (on a separate stack; -compare=false skips it), and keeps
// the stack up until Ctrl-C.
//
// Run it from the repository root after building the binaries:
//
//	go build -o bin/ ./cmd/...
//	go run ./tools/demo -bin bin
//
// or simply `make demo`. With -once it stops the stack after the steps, for
// tests and CI. It exits 1 when a step did not give the expected result.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// options are the demo's flags.
type options struct {
	bin          string
	dir          string
	issuerPort   int
	upstreamPort int
	listenPort   int
	adminPort    int
	once         bool
	compare      bool
	timeout      time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the flags and runs the demo; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin", "folder with the jwt-issuer, echo-upstream and jwt-sidecar binaries")
	fs.StringVar(&o.dir, "dir", ".demo", "work folder for the key and the logs")
	fs.IntVar(&o.issuerPort, "issuer-port", 8080, "jwt-issuer port")
	fs.IntVar(&o.upstreamPort, "upstream-port", 3000, "echo-upstream port")
	fs.IntVar(&o.listenPort, "listen-port", 7070, "jwt-sidecar proxy port")
	fs.IntVar(&o.adminPort, "admin-port", 7071, "jwt-sidecar admin port (/metrics, /readyz)")
	fs.BoolVar(&o.once, "once", false, "run the steps, then stop everything (for tests and CI)")
	fs.BoolVar(&o.compare, "compare", true, "end with a short comparison of jwt and introspection modes through an issuer outage (about 15 s)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long each process may take to become ready")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	d := &demo{opts: o, out: stdout, run: newRunner()}
	if err := d.start(ctx); err != nil {
		d.stopAll()
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "demo: interrupted while starting; stopped everything")
			return 1
		}
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	d.steps(ctx)
	code := 0
	if d.unexpected > 0 {
		fmt.Fprintf(stdout, "\nUNEXPECTED: %d check(s) did not give the expected result (see above).\n", d.unexpected)
		code = 1
	}
	if !o.once && ctx.Err() == nil {
		d.summary()
		if err := d.wait(ctx); err != nil {
			fmt.Fprintf(stderr, "demo: %v\n", err)
			code = 1
		}
	}
	fmt.Fprintln(stdout, "\nStopping the demo stack...")
	d.stopAll()
	fmt.Fprintln(stdout, "Stopped.")
	return code
}

// demo is one run: the processes, where they listen, and the checks.
type demo struct {
	opts       options
	out        io.Writer
	run        *runner
	children   []*proc.Child
	token      string // from step (a)
	unexpected int
}

func (d *demo) issuerURL() string   { return "http://127.0.0.1:" + strconv.Itoa(d.opts.issuerPort) }
func (d *demo) upstreamURL() string { return "http://127.0.0.1:" + strconv.Itoa(d.opts.upstreamPort) }
func (d *demo) proxyURL() string    { return "http://127.0.0.1:" + strconv.Itoa(d.opts.listenPort) }
func (d *demo) adminURL() string    { return "http://127.0.0.1:" + strconv.Itoa(d.opts.adminPort) }

// start makes the work folder and key, checks the ports and starts the three
// processes, each ready before the next starts.
func (d *demo) start(ctx context.Context) error {
	bin, err := filepath.Abs(d.opts.bin)
	if err != nil {
		return err
	}
	for _, name := range []string{"jwt-issuer", "echo-upstream", "jwt-sidecar"} {
		if _, err := os.Stat(proc.BinPath(bin, name)); err != nil {
			return fmt.Errorf("%s not found; build the binaries first (go build -o %s/ ./cmd/...) and pass their folder with -bin", proc.BinPath(d.opts.bin, name), d.opts.bin)
		}
	}
	ports := []struct {
		name, flag string
		port       int
	}{
		{"jwt-issuer", "issuer-port", d.opts.issuerPort},
		{"echo-upstream", "upstream-port", d.opts.upstreamPort},
		{"jwt-sidecar proxy", "listen-port", d.opts.listenPort},
		{"jwt-sidecar admin", "admin-port", d.opts.adminPort},
	}
	for _, p := range ports {
		if err := checkPortFree(p.name, p.port, p.flag); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(d.opts.dir, 0o700); err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	dir, err := filepath.Abs(d.opts.dir)
	if err != nil {
		return err
	}
	key := filepath.Join(dir, "issuer.key")
	fmt.Fprintf(d.out, "Work folder: %s\n", d.opts.dir)
	fmt.Fprintf(d.out, "$ %s genkey -alg RS256 -out %s -force\n", filepath.Join(d.opts.bin, "jwt-issuer"), filepath.Join(d.opts.dir, "issuer.key"))
	if out, err := runCommand(ctx, proc.BinPath(bin, "jwt-issuer"), "genkey", "-alg", "RS256", "-out", key, "-force"); err != nil {
		return fmt.Errorf("jwt-issuer genkey: %w: %s", err, out)
	}

	login, err := loginVars(dir)
	if err != nil {
		return fmt.Errorf("browser login files: %w", err)
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	procs := []struct {
		name, ready string
		vars        []string
	}{
		{"jwt-issuer", d.issuerURL() + "/healthz", []string{
			"LISTEN_ADDR=" + addr(d.opts.issuerPort),
			"ISSUER_URL=" + d.issuerURL(),
			"SIGNING_KEY_FILE=" + key,
		}},
		{"echo-upstream", d.upstreamURL() + "/healthz", []string{
			"LISTEN_ADDR=" + addr(d.opts.upstreamPort),
		}},
		{"jwt-sidecar", d.adminURL() + "/readyz", append([]string{
			"LISTEN_ADDR=" + addr(d.opts.listenPort),
			"ADMIN_ADDR=" + addr(d.opts.adminPort),
			"UPSTREAM_URL=" + d.upstreamURL(),
			"OIDC_ISSUER_URL=" + d.issuerURL(),
			"AUDIENCES=demo-api",
			"CLAIMS_TO_HEADERS=sub=X-Auth-Subject,scope=X-Auth-Scope,client_id=X-Auth-Client",
			"LOG_FORMAT=text",
			"REVOCATION_LIST_URL=" + d.issuerURL() + "/revocations",
			"REVOCATION_REFRESH_INTERVAL=" + demoRevocationPoll.String(),
		}, login...)},
	}
	fmt.Fprintln(d.out, "\nStarting the stack (each process logs to a file in the work folder):")
	for _, p := range procs {
		logPath := filepath.Join(dir, p.name+".log")
		_ = os.Remove(logPath) // a fresh log per run
		cmd := exec.Command(proc.BinPath(bin, p.name))
		// Only ChildEnv: a jwt-sidecar variable set in the user's shell
		// cannot change the demo.
		cmd.Env = proc.ChildEnv(p.vars...)
		c, err := proc.StartChild(p.name, logPath, cmd)
		if err != nil {
			return err
		}
		d.children = append(d.children, c)
		fmt.Fprintf(d.out, "  %-13s pid %-7d log %s\n", p.name, c.PID(), filepath.Join(d.opts.dir, p.name+".log"))
		if err := c.WaitReady(ctx, p.ready, d.opts.timeout); err != nil {
			return err
		}
	}
	fmt.Fprintln(d.out, "All three are ready.")
	return nil
}

// summary says where everything is.
func (d *demo) summary() {
	fmt.Fprintf(d.out, `
The demo stack is running:
  jwt-issuer     %[1]s  (discovery %[1]s/.well-known/openid-configuration, token %[1]s/token)
  echo-upstream  %[2]s  (the "legacy app"; call it through the sidecar)
  jwt-sidecar    %[3]s  (admin: %[4]s/metrics, %[4]s/readyz)
  logs           %[5]s
Try it:
  curl -sS -u demo:demo-secret -d grant_type=client_credentials %[1]s/token
  curl -sS -i -H "Authorization: Bearer $TOKEN" %[3]s/hello
  open %[3]s/hello in a browser and sign in as alice / alice (sign out: %[3]s/oauth2/sign_out)
  DPoP: repeat step (i); each call needs a fresh PROOF from %[6]s proof
  revoke: curl -sS -u demo:demo-secret -d "token=$TOKEN" %[1]s/revoke (refused within %[7]s)
Press Ctrl-C to stop.
`, d.issuerURL(), d.upstreamURL(), d.proxyURL(), d.adminURL(), filepath.Join(d.opts.dir, "*.log"),
		filepath.Join(d.opts.bin, "jwt-issuer"), demoRevocationPoll)
}

// wait blocks until ctx ends (Ctrl-C) or a process dies.
func (d *demo) wait(ctx context.Context) error {
	exited := make(chan *proc.Child, len(d.children))
	for _, c := range d.children {
		go func() {
			select {
			case <-c.Done():
				exited <- c
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case c := <-exited:
		return c.Died()
	}
}

// stopAll stops the processes in reverse order of start.
func (d *demo) stopAll() {
	for i := len(d.children) - 1; i >= 0; i-- {
		d.children[i].Stop(10 * time.Second)
	}
}
