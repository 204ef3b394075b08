package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertObserver learns of every load attempt of a certificate pair: the
// error, or the new certificate's expiry. The injector's metrics are one.
type CertObserver interface {
	CertificateLoaded(err error, notAfter time.Time)
}

type nopCertObserver struct{}

func (nopCertObserver) CertificateLoaded(error, time.Time) {}

// CertReloader serves a listener's certificate and re-reads the files when
// they change (cert-manager renews them; a Secret volume is updated by a
// symlink swap). A pair that does not load keeps the previous one. The
// injector's webhook and the sidecar's TLS listener both use it.
type CertReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger
	metrics           CertObserver

	cert atomic.Pointer[tls.Certificate]
	next atomic.Int64 // UnixNano before which no handshake looks at the files

	mu    sync.Mutex // one reload at a time; guards seen and tried
	seen  [2]os.FileInfo
	tried bool
}

// sameVersion tells, cheaply, whether two stats are of one version of a
// file: same file (a Secret volume update swaps a symlink to new files),
// same modification time and size. Both nil (absent) is the same too.
func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// NewCertReloader loads the pair once. A failure is logged, not returned:
// the process stays up with /readyz at 503 and keeps trying, every interval
// and on every handshake.
// m may be nil.
func NewCertReloader(certFile, keyFile string, interval time.Duration, m CertObserver, log *slog.Logger) *CertReloader {
	if m == nil {
		m = nopCertObserver{}
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, interval: interval, metrics: m, log: log}
	r.reload()
	return r
}

// Ready reports whether a certificate has been loaded.
func (r *CertReloader) Ready() bool { return r.cert.Load() != nil }

// GetCertificate is for tls.Config. It looks at the files' metadata at most
// once per interval, so a handshake costs two stat calls at worst.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now().UnixNano(); now >= r.next.Load() {
		r.reload()
	}
	c := r.cert.Load()
	if c == nil {
		return nil, errors.New("no certificate loaded yet")
	}
	return c, nil
}

// Run checks the files every interval until ctx ends, so that readiness and
// the expiry metric follow the files even without handshakes. It returns
// nil when ctx ends.
func (r *CertReloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.reload()
		}
	}
}

// reload loads the pair if either file changed since the last attempt.
func (r *CertReloader) reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next.Store(time.Now().Add(r.interval).UnixNano())
	var now [2]os.FileInfo
	for i, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			now[i] = fi
		}
	}
	if r.tried && sameVersion(now[0], r.seen[0]) && sameVersion(now[1], r.seen[1]) {
		return
	}
	r.seen, r.tried = now, true
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		// A renewal may be half-written (certificate new, key old): the
		// next change of either file is tried again.
		r.log.Error("TLS certificate not loaded; keeping the previous one", "cert_file", r.certFile, "key_file", r.keyFile, "error", err)
		r.metrics.CertificateLoaded(err, time.Time{})
		return
	}
	r.cert.Store(cert)
	r.metrics.CertificateLoaded(nil, cert.Leaf.NotAfter)
	r.log.Info("TLS certificate loaded", "subject", cert.Leaf.Subject.String(), "dns_names", cert.Leaf.DNSNames,
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the certificate: %w", err)
		}
	}
	return &cert, nil
}
