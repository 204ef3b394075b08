package capool

import (
	"path/filepath"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// TestPoolFollowsTheFile: a new bundle is a new version; one that does not
// load keeps the previous certificates; a file without any is refused at
// start.
func TestPoolFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.pem")
	a, b := tlstest.NewCA(t, "a"), tlstest.NewCA(t, "b")
	tlstest.WriteFile(t, file, a.PEM)
	p, err := New(file, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, gen := p.Get()
	if gen != 1 || !pool.Equal(a.Pool()) {
		t.Fatalf("first version %d, want 1 holding CA a", gen)
	}
	if _, again := p.Get(); again != gen {
		t.Errorf("an unchanged file changed the version to %d", again)
	}
	tlstest.WriteFile(t, file, b.PEM)
	if pool, gen = p.Get(); gen != 2 || !pool.Equal(b.Pool()) {
		t.Errorf("after the change: version %d, want 2 holding CA b", gen)
	}
	tlstest.WriteFile(t, file, []byte("half written"))
	if pool, gen = p.Get(); gen != 2 || !pool.Equal(b.Pool()) {
		t.Errorf("after a broken change: version %d, want 2 still holding CA b", gen)
	}
	tlstest.WriteFile(t, file, append(a.PEM, b.PEM...))
	if _, gen = p.Get(); gen != 3 {
		t.Errorf("after a good change: version %d, want 3", gen)
	}
	empty := filepath.Join(dir, "empty.pem")
	tlstest.WriteFile(t, empty, []byte("no certificates here\n"))
	if _, err := New(empty, 0, nil); err == nil {
		t.Error("a file without certificates was accepted")
	}
}
