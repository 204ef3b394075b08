package injector

import (
	"log/slog"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// CertReloader serves the webhook's certificate and re-reads the files when
// they change; it is the one reloader the sidecar's TLS listener uses too.
type CertReloader = cli.CertReloader

// NewCertReloader loads the pair once and reports every load to m.
func NewCertReloader(certFile, keyFile string, interval time.Duration, m *Metrics, log *slog.Logger) *CertReloader {
	return cli.NewCertReloader(certFile, keyFile, interval, m, log)
}
